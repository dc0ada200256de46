"""The pure, I/O-free decision core: routing, admission, flow stepping, schedules."""
