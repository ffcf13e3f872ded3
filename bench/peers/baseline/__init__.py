"""The tutorial-style Channels app (the common tutorials' design), as a baseline for Herald.

A group per deploy, one `group_send` per log line, channels-redis with its defaults, one daphne for
HTTP and WebSocket, no batching, no storage, no replay. It speaks the subset of Herald's protocol the
benchmark uses: POST /api/v1/deploys/ and /api/v1/deploys/<id>/events/, socket /ws/deploys/<id>/.
"""
