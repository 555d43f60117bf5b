//! `ctwall ctl`: the operator's client for the management plane
//! ([`crate::mgmt`]). A small blocking HTTP/1.1 client over
//! `std::net::TcpStream`: one request per connection, the body printed as
//! it is, a non-zero exit on HTTP errors.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Arguments of `ctwall ctl`.
#[derive(Clone, Debug, clap::Args)]
pub struct CtlArgs {
    /// The management address: ADDR, ADDR:PORT or [IPV6]:PORT (port 80 by default).
    #[arg(long, default_value = "10.0.0.250")]
    pub addr: String,
    /// Seconds to wait for the connection and for each read (not for `events`).
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// What to ask.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum CtlCommand {
    /// The connection table, in `conntrack -L` format.
    Conntrack {
        /// List the table.
        #[arg(short = 'L', long = "list", required = true)]
        list: bool,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pending expectations (`conntrack -L expect`).
    Expect {
        /// List the expectations.
        #[arg(short = 'L', long = "list", required = true)]
        list: bool,
    },
    /// Statistics as JSON.
    Stats,
    /// Reload the configuration (as SIGHUP does).
    Reload {
        /// The bearer token from the configuration's `mgmt.token`.
        #[arg(long)]
        token: Option<String>,
    },
    /// Follow connection events (`conntrack -E`) until interrupted.
    Events,
}

/// Run a `ctwall ctl` command, printing the answer on stdout.
pub fn run(args: CtlArgs) -> Result<(), String> {
    let addr = resolve(&args.addr)?;
    let (method, path, token) = match &args.command {
        CtlCommand::Conntrack { json: true, .. } => ("GET", "/conntrack?format=json", None),
        CtlCommand::Conntrack { .. } => ("GET", "/conntrack?format=conntrack", None),
        CtlCommand::Expect { .. } => ("GET", "/expect", None),
        CtlCommand::Stats => ("GET", "/stats", None),
        CtlCommand::Reload { token } => ("POST", "/reload", token.as_deref()),
        CtlCommand::Events => ("GET", "/events", None),
    };
    let stream = matches!(args.command, CtlCommand::Events);
    let timeout = Duration::from_secs(args.timeout.max(1));
    let stdout = io::stdout();
    let mut out = stdout.lock();
    fetch(addr, &request(method, path, &args.addr, token), timeout, stream, &mut out)
}

/// `ADDR`, `ADDR:PORT`, `[IPV6]:PORT` or `HOST[:PORT]`; port 80 by default.
fn resolve(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 80));
    }
    let with_port = if s.contains(':') { s.to_string() } else { format!("{s}:80") };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {s:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

fn request(method: &str, path: &str, host: &str, token: Option<&str>) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ctwall-ctl\r\nConnection: close\r\n");
    if let Some(t) = token {
        r.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if method == "POST" {
        r.push_str("Content-Length: 0\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// The most bytes a response head may take.
const MAX_HEAD: usize = 16 * 1024;

/// Send `req` to `addr` and copy the response body to `out`. A non-2xx
/// status is an error carrying the body. With `stream`, reads wait without
/// a timeout (for `/events`).
fn fetch(addr: SocketAddr, req: &[u8], timeout: Duration, stream: bool, out: &mut dyn Write) -> Result<(), String> {
    let fail = |what: &str, e: io::Error| format!("{what} {addr}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail("cannot connect to", e))?;
    s.set_write_timeout(Some(timeout)).map_err(|e| fail("socket option for", e))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| fail("socket option for", e))?;
    s.write_all(req).map_err(|e| fail("cannot send to", e))?;

    // The head.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (code, reason, body_start, length) = loop {
        let n = s.read(&mut chunk).map_err(|e| fail("cannot read from", e))?;
        if n == 0 {
            return Err(format!("{addr} closed the connection before a complete response"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(at)) => {
                let length = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok()))
                    .map(|v| v.ok_or_else(|| format!("{addr} sent a bad Content-Length")))
                    .transpose()?;
                break (resp.code.unwrap_or(0), resp.reason.unwrap_or("").to_string(), at, length);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err(format!("{addr} sent a response head over {MAX_HEAD} bytes")),
            Err(e) => return Err(format!("{addr} sent a malformed response: {e}")),
        }
    };
    let ok = (200..300).contains(&code);
    if stream && ok {
        s.set_read_timeout(None).map_err(|e| fail("socket option for", e))?;
    }

    // The body: by length, or until the server closes.
    let mut body = buf.split_off(body_start);
    let mut sink = |b: &[u8]| -> Result<(), String> {
        if ok {
            out.write_all(b).and_then(|()| out.flush()).map_err(|e| format!("cannot write the answer: {e}"))
        } else {
            Ok(())
        }
    };
    if let Some(len) = length {
        body.truncate(len);
    }
    sink(&body)?;
    let mut got = body.len();
    let mut err_body = if ok { Vec::new() } else { body };
    while length.is_none_or(|l| got < l) {
        let n = s.read(&mut chunk).map_err(|e| fail("cannot read from", e))?;
        if n == 0 {
            if length.is_some() {
                return Err(format!("{addr} closed the connection after {got} body bytes"));
            }
            break;
        }
        let n = length.map_or(n, |l| n.min(l - got));
        got += n;
        sink(&chunk[..n])?;
        if !ok && err_body.len() < 4096 {
            err_body.extend_from_slice(&chunk[..n]);
        }
    }
    if ok {
        Ok(())
    } else {
        Err(format!("HTTP {code} {reason}: {}", String::from_utf8_lossy(&err_body).trim_end()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// Serve one connection on loopback with `answer`, returning the request.
    fn serve_once(answer: &'static [u8]) -> (SocketAddr, thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut b).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&b[..n]);
            }
            s.write_all(answer).unwrap();
            req
        });
        (addr, h)
    }

    fn go(answer: &'static [u8], req: &[u8], stream: bool) -> (Result<(), String>, String, String) {
        let (addr, h) = serve_once(answer);
        let mut out = Vec::new();
        let r = fetch(addr, req, Duration::from_secs(5), stream, &mut out);
        (r, String::from_utf8(out).unwrap(), String::from_utf8(h.join().unwrap()).unwrap())
    }

    #[test]
    fn prints_the_body_by_length() {
        let req = request("GET", "/conntrack", "10.0.0.250", None);
        let (r, out, seen) = go(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nline\n\nextra", &req, false);
        assert_eq!(r, Ok(()));
        assert_eq!(out, "line\n\n");
        assert_eq!(
            seen,
            "GET /conntrack HTTP/1.1\r\nHost: 10.0.0.250\r\nUser-Agent: ctwall-ctl\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn http_errors_are_errors_with_the_body() {
        let req = request("POST", "/reload", "x", Some("tok"));
        let (r, out, seen) = go(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\n\r\nneeds token\n", &req, false);
        assert_eq!(r, Err("HTTP 401 Unauthorized: needs token".into()));
        assert_eq!(out, "");
        assert!(seen.contains("Authorization: Bearer tok\r\n") && seen.contains("Content-Length: 0\r\n"), "{seen}");
    }

    #[test]
    fn a_stream_is_read_until_close() {
        let req = request("GET", "/events", "x", None);
        let (r, out, _) = go(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[NEW] a\n[DESTROY] a\n", &req, true);
        assert_eq!(r, Ok(()));
        assert_eq!(out, "[NEW] a\n[DESTROY] a\n");
    }

    #[test]
    fn short_and_malformed_responses_fail() {
        let req = request("GET", "/stats", "x", None);
        let (r, ..) = go(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", &req, false);
        assert!(r.unwrap_err().contains("after 3 body bytes"));
        let (r, ..) = go(b"SMTP ready\r\n\r\n", &req, false);
        assert!(r.unwrap_err().contains("malformed"));
        let (r, ..) = go(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", &req, false);
        assert!(r.unwrap_err().contains("bad Content-Length"));
        let (r, ..) = go(b"HTTP/1.1 200 OK\r\n", &req, false);
        assert!(r.unwrap_err().contains("before a complete response"));
    }

    #[test]
    fn connection_refused_is_an_error() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = fetch(addr, b"", Duration::from_secs(1), false, &mut Vec::new()).unwrap_err();
        assert!(e.starts_with("cannot connect to 127.0.0.1:"), "{e}");
    }

    #[test]
    fn addresses() {
        assert_eq!(resolve("10.0.0.250"), Ok("10.0.0.250:80".parse().unwrap()));
        assert_eq!(resolve("10.0.0.250:8080"), Ok("10.0.0.250:8080".parse().unwrap()));
        assert_eq!(resolve("fd00::fa"), Ok("[fd00::fa]:80".parse().unwrap()));
        assert_eq!(resolve("[fd00::fa]"), Ok("[fd00::fa]:80".parse().unwrap()));
        assert_eq!(resolve("[fd00::fa]:81"), Ok("[fd00::fa]:81".parse().unwrap()));
        assert_eq!(resolve("localhost:81").map(|a| a.port()), Ok(81));
        assert!(resolve("no such host!").is_err());
    }

    #[test]
    fn args_parse_like_conntrack() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            ctl: CtlArgs,
        }
        let c = Cli::try_parse_from(["ctl", "--addr", "fd00::fa", "conntrack", "-L"]).unwrap();
        assert!(matches!(c.ctl.command, CtlCommand::Conntrack { list: true, json: false }));
        assert_eq!(c.ctl.addr, "fd00::fa");
        assert!(Cli::try_parse_from(["ctl", "conntrack"]).is_err(), "-L is required");
        let c = Cli::try_parse_from(["ctl", "reload", "--token", "t"]).unwrap();
        assert!(matches!(c.ctl.command, CtlCommand::Reload { token: Some(ref t) } if t == "t"));
        assert!(Cli::try_parse_from(["ctl", "events"]).is_ok());
    }
}
