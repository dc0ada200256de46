"""The local single-node stack: start, watch and stop Kamailio, rtpengine, Redis and the API."""
