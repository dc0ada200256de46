"""Demo and test drivers that place real SIP traffic with SIPp."""
