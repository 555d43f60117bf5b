//! The HTTP/1.1 side of the management service: request parsing with
//! httparse, routing, and response framing. Pure functions over bytes; the
//! sockets live in [`super::Mgmt`].
//!
//! Every response closes the connection (`Connection: close`), so there is
//! no pipelining or keep-alive to get wrong; `/events` is a response without
//! a length whose body ends when the connection does (RFC 9112 § 6.3).

/// The most bytes a request head may take; longer ones get 431.
pub(crate) const MAX_REQUEST: usize = 8192;

/// The most header lines a request may carry.
const MAX_HEADERS: usize = 32;

/// What a request asks for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /conntrack`: `/proc/net/nf_conntrack` lines.
    ConntrackProc,
    /// `GET /conntrack?format=json`.
    ConntrackJson,
    /// `GET /conntrack?format=conntrack`: `conntrack -L` lines.
    ConntrackList,
    /// `GET /expect`: `/proc/net/nf_conntrack_expect` lines.
    Expect,
    /// `GET /stats`: JSON.
    Stats,
    /// `GET /metrics`: Prometheus text exposition.
    Metrics,
    /// `GET /events`: a held stream of `conntrack -E` lines.
    Events,
    /// `POST /reload`: needs the bearer token.
    Reload,
}

/// The outcome of parsing what a connection has sent so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// The head is not complete yet.
    Incomplete,
    /// A valid request; `bearer` is the token of an `Authorization: Bearer`
    /// header, if there is one.
    Request { route: Route, bearer: Option<Vec<u8>> },
    /// Answer with this status and close.
    Refuse(Status),
}

/// The statuses the service answers with.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed { allow: &'static str },
    HeaderTooLarge,
    InternalError,
}

impl Status {
    pub(crate) const fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed { .. } => 405,
            Status::HeaderTooLarge => 431,
            Status::InternalError => 500,
        }
    }

    const fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::Unauthorized => "Unauthorized",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed { .. } => "Method Not Allowed",
            Status::HeaderTooLarge => "Request Header Fields Too Large",
            Status::InternalError => "Internal Server Error",
        }
    }
}

/// Parse the request head in `buf` (RFC 9112 § 3).
pub(crate) fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REQUEST => Parsed::Refuse(Status::HeaderTooLarge),
        Ok(httparse::Status::Partial) => Parsed::Incomplete,
        Err(httparse::Error::TooManyHeaders) => Parsed::Refuse(Status::HeaderTooLarge),
        Err(_) => Parsed::Refuse(Status::BadRequest),
        Ok(httparse::Status::Complete(len)) if len > MAX_REQUEST => Parsed::Refuse(Status::HeaderTooLarge),
        Ok(httparse::Status::Complete(_)) => {
            let (Some(method), Some(target)) = (req.method, req.path) else {
                return Parsed::Refuse(Status::BadRequest);
            };
            match route(method, target) {
                Ok(route) => Parsed::Request { route, bearer: bearer(req.headers) },
                Err(s) => Parsed::Refuse(s),
            }
        }
    }
}

fn route(method: &str, target: &str) -> Result<Route, Status> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let allow = match path {
        "/conntrack" | "/expect" | "/stats" | "/metrics" | "/events" => "GET",
        "/reload" => "POST",
        _ if path.starts_with('/') => return Err(Status::NotFound),
        // origin-form only (RFC 9112 § 3.2.1)
        _ => return Err(Status::BadRequest),
    };
    if method != allow {
        return Err(Status::MethodNotAllowed { allow });
    }
    let mut conntrack = Route::ConntrackProc;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair {
            "format=json" if path == "/conntrack" => conntrack = Route::ConntrackJson,
            "format=proc" if path == "/conntrack" => conntrack = Route::ConntrackProc,
            "format=conntrack" if path == "/conntrack" => conntrack = Route::ConntrackList,
            _ => return Err(Status::BadRequest),
        }
    }
    Ok(match path {
        "/conntrack" => conntrack,
        "/expect" => Route::Expect,
        "/stats" => Route::Stats,
        "/metrics" => Route::Metrics,
        "/events" => Route::Events,
        _ => Route::Reload,
    })
}

/// The credentials of `Authorization: Bearer <token>` (RFC 6750 § 2.1).
fn bearer(headers: &[httparse::Header<'_>]) -> Option<Vec<u8>> {
    let h = headers.iter().find(|h| h.name.eq_ignore_ascii_case("authorization"))?;
    let v = h.value.trim_ascii();
    let (scheme, rest) = v.split_at(v.iter().position(|&b| b == b' ')?);
    scheme.eq_ignore_ascii_case(b"bearer").then(|| rest.trim_ascii().to_vec())
}

/// Compare a presented token with the configured one in time that does not
/// depend on where they first differ.
pub(crate) fn token_matches(presented: &[u8], token: &[u8]) -> bool {
    if presented.len() != token.len() {
        return false;
    }
    presented.iter().zip(token).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// A complete response that closes the connection.
pub(crate) fn response(status: Status, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 160);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
            status.code(),
            status.reason(),
            body.len()
        )
        .as_bytes(),
    );
    match status {
        Status::MethodNotAllowed { allow } => out.extend_from_slice(format!("Allow: {allow}\r\n").as_bytes()),
        Status::Unauthorized => out.extend_from_slice(b"WWW-Authenticate: Bearer realm=\"ctwall\"\r\n"),
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// An error response with a one-line text body.
pub(crate) fn error(status: Status, message: &str) -> Vec<u8> {
    response(status, TEXT, format!("{message}\n").as_bytes())
}

/// The head of the `/events` stream: no length, the body ends with the
/// connection.
pub(crate) const EVENTS_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";

pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
pub(crate) const JSON: &str = "application/json";
/// The Prometheus text exposition format, version 0.0.4.
pub(crate) const METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn req(route: Route, bearer: Option<&[u8]>) -> Parsed {
        Parsed::Request { route, bearer: bearer.map(<[u8]>::to_vec) }
    }

    #[test]
    fn routes() {
        let cases: &[(&[u8], Parsed)] = &[
            (b"GET /conntrack HTTP/1.1\r\nHost: x\r\n\r\n", req(Route::ConntrackProc, None)),
            (b"GET /conntrack?format=json HTTP/1.1\r\n\r\n", req(Route::ConntrackJson, None)),
            (b"GET /conntrack?format=proc HTTP/1.0\r\n\r\n", req(Route::ConntrackProc, None)),
            (b"GET /conntrack?format=conntrack HTTP/1.1\r\n\r\n", req(Route::ConntrackList, None)),
            (b"GET /expect HTTP/1.1\r\n\r\n", req(Route::Expect, None)),
            (b"GET /stats HTTP/1.1\r\n\r\n", req(Route::Stats, None)),
            (b"GET /metrics HTTP/1.1\r\n\r\n", req(Route::Metrics, None)),
            (b"GET /events HTTP/1.1\r\n\r\n", req(Route::Events, None)),
            (b"POST /reload HTTP/1.1\r\nauthorization:  bearer  abc \r\n\r\n", req(Route::Reload, Some(b"abc"))),
            (b"POST /reload HTTP/1.1\r\nAuthorization: Basic abc\r\n\r\n", req(Route::Reload, None)),
            (b"POST /reload HTTP/1.1\r\nAuthorization: Bearer\r\n\r\n", req(Route::Reload, None)),
            (b"GET /nope HTTP/1.1\r\n\r\n", Parsed::Refuse(Status::NotFound)),
            (b"GET http://x/stats HTTP/1.1\r\n\r\n", Parsed::Refuse(Status::BadRequest)),
            (b"GET /stats?format=json HTTP/1.1\r\n\r\n", Parsed::Refuse(Status::BadRequest)),
            (b"GET /conntrack?format=xml HTTP/1.1\r\n\r\n", Parsed::Refuse(Status::BadRequest)),
            (b"GET /reload HTTP/1.1\r\n\r\n", Parsed::Refuse(Status::MethodNotAllowed { allow: "POST" })),
            (b"DELETE /conntrack HTTP/1.1\r\n\r\n", Parsed::Refuse(Status::MethodNotAllowed { allow: "GET" })),
            (b"GET /stats HTTP/2.0\r\n\r\n", Parsed::Refuse(Status::BadRequest)),
            (b"\x00\x01\x02\r\n\r\n", Parsed::Refuse(Status::BadRequest)),
            (b"GET /stats HTTP/1.1\r\nHost", Parsed::Incomplete),
            (b"", Parsed::Incomplete),
        ];
        for (bytes, want) in cases {
            assert_eq!(&parse(bytes), want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn request_size_is_bounded() {
        let mut long = b"GET /stats HTTP/1.1\r\nX-Pad: ".to_vec();
        long.resize(MAX_REQUEST, b'a');
        assert_eq!(parse(&long), Parsed::Refuse(Status::HeaderTooLarge));
        let mut many = b"GET /stats HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Parsed::Refuse(Status::HeaderTooLarge));
    }

    #[test]
    fn token_comparison() {
        assert!(token_matches(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!token_matches(b"0123456789abcdeF", b"0123456789abcdef"));
        assert!(!token_matches(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!token_matches(b"", b"0123456789abcdef"));
    }

    #[test]
    fn responses_are_framed() {
        let r = response(Status::Ok, TEXT, b"hi\n");
        assert_eq!(
            r,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\nConnection: close\r\n\r\nhi\n"
        );
        let r = String::from_utf8(error(Status::Unauthorized, "token needed")).unwrap();
        assert!(r.starts_with("HTTP/1.1 401 Unauthorized\r\n") && r.contains("WWW-Authenticate: Bearer"), "{r}");
        let r = String::from_utf8(error(Status::MethodNotAllowed { allow: "POST" }, "use POST")).unwrap();
        assert!(r.contains("\r\nAllow: POST\r\n"), "{r}");
    }
}
