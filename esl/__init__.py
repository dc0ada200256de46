"""FreeSWITCH side: ESL protocol, connection and the per-call controller."""
