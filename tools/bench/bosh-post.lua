-- wrk script for tools/bench/compare: every request POSTs one BOSH <body/>
-- naming a session that does not exist. A connection manager must read the
-- HTTP request, parse the body and look the sid up, then answer 200 with a
-- terminate body (item-not-found): the BOSH request path without a backend,
-- next to nginx serving a file of the same size.
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/xml; charset=utf-8"
wrk.body = "<body rid='1' sid='no-such-session' xmlns='http://jabber.org/protocol/httpbind'/>"
