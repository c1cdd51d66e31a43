//! Serving HTTP/1.1 with limits on every listener podid runs (the server, the agent, its probes
//! and metrics): how long a client may take to send a request head, how long a body may stall,
//! how long a kept-alive connection may sit idle, a send timeout, and how many connections are
//! open at once. A client that overstays is disconnected; the others are unaffected.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use clap::Args;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
#[cfg(test)]
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

/// The limits of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// From the connection's start (or the first byte after an idle spell) to the end of the
    /// request head.
    pub(crate) header_timeout: Duration,
    /// The longest a request body, or a response the client does not read, may make no
    /// progress.
    pub(crate) body_timeout: Duration,
    /// The longest a kept-alive connection may wait for its next request.
    pub(crate) idle_timeout: Duration,
    /// The most connections open at once; more wait in the kernel's backlog.
    pub(crate) max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// The flags that set [`Limits`], shared by `podid server`, `podid agent` and `podid up`.
#[derive(Clone, Debug, Args)]
pub(crate) struct ListenArgs {
    /// The longest a client may take to send a request's line and headers, counted from the
    /// connection's start (or its first byte after an idle spell): a slow or stalled client is
    /// disconnected (e.g. `10s`, `500ms`).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) request_header_timeout: Duration,
    /// The longest a request body may stall (no byte received), or a response go unread:
    /// the connection is then closed.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) request_body_timeout: Duration,
    /// The longest a kept-alive connection may wait for its next request before it is closed
    /// (clients open a new one).
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) keep_alive_timeout: Duration,
    /// The most connections served at once; further ones wait in the kernel's backlog until one
    /// closes. Keep it below the process's file-descriptor limit (`ulimit -n`).
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_connections: u32,
}

impl ListenArgs {
    /// The limits these flags set.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            header_timeout: self.request_header_timeout,
            body_timeout: self.request_body_timeout,
            idle_timeout: self.keep_alive_timeout,
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
        }
    }
}

/// `90d`, `3h`, `45m`, `90s`, `500ms`, `1h30m`, `0`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut millis = 0u64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400_000,
            'h' => 3_600_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => 60_000,
            's' => 1000,
            _ => {
                return Err(format!(
                    "`{text}`: use days, hours, minutes, seconds and milliseconds, e.g. `90d`, `3h`, `45m`, `1h30m`, `500ms`"
                ));
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}`: a number must come before each unit"))?;
        millis = millis.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!(
            "`{text}`: give a unit (`d`, `h`, `m`, `s` or `ms`) after `{number}`"
        ));
    }
    Ok(Duration::from_millis(millis))
}

/// Serves `router` on `listener` within `limits` until `stop` completes; then stops accepting,
/// lets the requests in flight finish (idle connections close at once) and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stopping, stopped) = watch::channel(false);
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            () = &mut stop => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let stopped = stopped.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match tls {
                None => connection(stream, peer, false, router, limits, stopped).await,
                // The handshake is part of the request head: it has the head's time.
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            connection(stream, peer, true, router, limits, stopped).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection holds a slot until it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// One connection, until the client leaves, a limit is reached, or the server stops.
async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    secure: bool,
    router: axum::Router,
    limits: Limits,
    mut stopped: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let phase = Arc::new(PhaseCell::new(Phase::Head(Instant::now())));
    let io = TokioIo::new(Guarded::new(stream, phase.clone(), limits));
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let router = router.clone();
        let phase = phase.clone();
        async move {
            let now = Instant::now();
            phase.set(if request.body().is_end_stream() {
                Phase::Handling
            } else {
                Phase::Body(now)
            });
            let mut request = request.map(|body| {
                Body::new(PhasedBody {
                    inner: body,
                    phase: phase.clone(),
                    side: Side::Request,
                })
            });
            request.extensions_mut().insert(ConnectInfo(peer));
            if secure {
                request
                    .extensions_mut()
                    .insert(podid_server::SecureTransport);
            }
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response.map(|body| PhasedBody {
                inner: body,
                phase: phase.clone(),
                side: Side::Response,
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let stopping = async move {
        // A closed channel (the server is gone) stops the connection too.
        while !*stopped.borrow_and_update() {
            if stopped.changed().await.is_err() {
                break;
            }
        }
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection closed");
    }
}

/// Where a connection is in its request cycle, and since when.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Receiving a request head (since the connection started, or its first byte arrived).
    Head(Instant),
    /// Receiving a request body (since the last byte arrived).
    Body(Instant),
    /// The request is with its handler: the client owes nothing.
    Handling,
    /// Between requests, since the last response was sent.
    Idle(Instant),
}

/// A connection's [`Phase`], shared by its socket and its bodies: one atomic word (the phase's
/// kind, and its time in microseconds since the connection began), so that moving it along,
/// several times per request, takes no lock.
struct PhaseCell {
    base: Instant,
    word: AtomicU64,
}

impl PhaseCell {
    fn new(phase: Phase) -> Self {
        let cell = Self {
            base: Instant::now(),
            word: AtomicU64::new(0),
        };
        cell.set(phase);
        cell
    }

    fn phase(&self) -> Phase {
        let word = self.word.load(Ordering::Acquire);
        let at = self.base + Duration::from_micros(word >> 2);
        match word & 3 {
            0 => Phase::Head(at),
            1 => Phase::Body(at),
            3 => Phase::Idle(at),
            _ => Phase::Handling,
        }
    }

    fn set(&self, phase: Phase) {
        let micros = |at: Instant| {
            u64::try_from(at.saturating_duration_since(self.base).as_micros())
                .unwrap_or(u64::MAX >> 2)
                .min(u64::MAX >> 2)
        };
        let word = match phase {
            Phase::Head(at) => micros(at) << 2,
            Phase::Body(at) => (micros(at) << 2) | 1,
            Phase::Handling => 2,
            Phase::Idle(at) => (micros(at) << 2) | 3,
        };
        self.word.store(word, Ordering::Release);
    }
}

/// The connection's socket, closed with `TimedOut` when the client overstays its phase.
struct Guarded<S> {
    io: S,
    phase: Arc<PhaseCell>,
    limits: Limits,
    read_timer: Pin<Box<Sleep>>,
    /// When a write started waiting on the client (it reads too slowly, or not at all).
    write_blocked: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
}

impl<S> Guarded<S> {
    fn new(io: S, phase: Arc<PhaseCell>, limits: Limits) -> Self {
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        Self {
            io,
            phase,
            limits,
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            write_blocked: None,
            write_timer: Box::pin(tokio::time::sleep_until(far)),
        }
    }

    /// When the pending read must have completed, in the current phase.
    fn read_deadline(&self) -> Option<Instant> {
        match self.phase.phase() {
            Phase::Head(since) => Some(since + self.limits.header_timeout),
            Phase::Body(last) => Some(last + self.limits.body_timeout),
            Phase::Idle(since) => Some(since + self.limits.idle_timeout),
            Phase::Handling => None,
        }
    }

    /// Bytes arrived: an idle connection starts a request head; a body made progress.
    fn received(&self) {
        match self.phase.phase() {
            Phase::Idle(_) => self.phase.set(Phase::Head(Instant::now())),
            Phase::Body(_) => self.phase.set(Phase::Body(Instant::now())),
            Phase::Head(_) | Phase::Handling => {}
        }
    }
}

impl<S> Guarded<S> {
    /// A write that waits on the client longer than the body timeout fails.
    fn guard_write(
        &mut self,
        polled: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if polled.is_ready() {
            self.write_blocked = None;
            return polled;
        }
        let since = *self.write_blocked.get_or_insert_with(Instant::now);
        if expired(&mut self.write_timer, since + self.limits.body_timeout, cx) {
            Poll::Ready(Err(timed_out("to read its response")))
        } else {
            Poll::Pending
        }
    }
}

/// Waits on `timer` until `deadline`: `Ready(Err)` once it has passed.
fn expired(timer: &mut Pin<Box<Sleep>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    timer.as_mut().poll(cx).is_ready()
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the client took too long {what}"),
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.received();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(deadline) = self.read_deadline() else {
                    return Poll::Pending;
                };
                let this = &mut *self;
                if expired(&mut this.read_timer, deadline, cx) {
                    Poll::Ready(Err(timed_out("to send its request")))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        self.guard_write(polled, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.guard_write(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A body that moves its connection's phase along: a request body to [`Phase::Handling`] once it
/// has all arrived, a response body to [`Phase::Idle`] once it is sent (or dropped).
struct PhasedBody<B> {
    inner: B,
    phase: Arc<PhaseCell>,
    side: Side,
}

/// Which way a [`PhasedBody`] goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for PhasedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if self.side == Side::Request
            && (matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream())
        {
            self.phase.set(Phase::Handling);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for PhasedBody<B> {
    fn drop(&mut self) {
        if self.side == Side::Response {
            self.phase.set(Phase::Idle(Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_keeps_its_kind_and_its_time_to_the_microsecond() {
        let cell = PhaseCell::new(Phase::Head(Instant::now()));
        let at = cell.base + Duration::from_micros(1_234_567);
        let kinds = [
            Phase::Head(at),
            Phase::Body(at),
            Phase::Handling,
            Phase::Idle(at),
            Phase::Idle(cell.base),
        ];
        for phase in kinds {
            cell.set(phase);
            assert_eq!(format!("{:?}", cell.phase()), format!("{phase:?}"));
        }
        // A time before the connection began counts as its start.
        cell.set(Phase::Body(
            cell.base
                .checked_sub(Duration::from_secs(1))
                .unwrap_or(cell.base),
        ));
        assert_eq!(
            format!("{:?}", cell.phase()),
            format!("{:?}", Phase::Body(cell.base))
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3h"), Ok(Duration::from_secs(10800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(
            parse_duration("1m30s250ms"),
            Ok(Duration::from_millis(90_250))
        );
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("3").is_err());
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("ms").is_err());
    }

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    const SHORT: Duration = Duration::from_millis(400);

    /// A server on a free loopback port with short limits: `/` answers `ok`, `/echo` the size
    /// of the body, `/slow` after 1.5 s (longer than any limit), `/big` 64 MiB.
    async fn server(max_connections: usize) -> SocketAddr {
        use axum::routing::{get, post};
        let router = axum::Router::new()
            .route("/", get(|| async { "ok" }))
            .route(
                "/echo",
                post(|body: Bytes| async move { body.len().to_string() }),
            )
            .route(
                "/slow",
                post(|body: Bytes| async move {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    body.len().to_string()
                }),
            )
            .route("/big", get(|| async { vec![b'x'; 64 << 20] }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let limits = Limits {
            header_timeout: SHORT,
            body_timeout: SHORT,
            idle_timeout: SHORT,
            max_connections,
        };
        tokio::spawn(serve(
            listener,
            router,
            limits,
            None,
            std::future::pending(),
        ));
        address
    }

    /// How long until the server closes `stream` (reading and discarding what it sends).
    async fn time_to_close(stream: &mut TcpStream) -> Duration {
        let started = Instant::now();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return started.elapsed(),
                Ok(Ok(_)) => {}
                Err(_) => panic!("the connection was not closed within 10 s"),
            }
        }
    }

    /// One request on a fresh connection; the response's text.
    async fn request(address: SocketAddr, raw: &str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(raw.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    const GET: &str = "GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    #[tokio::test]
    async fn a_client_stalling_in_the_head_is_closed_and_others_are_served() {
        let address = server(16).await;
        let mut silent = TcpStream::connect(address).await.unwrap();
        let mut partial = TcpStream::connect(address).await.unwrap();
        partial
            .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        // Another client is served meanwhile.
        assert!(request(address, GET).await.starts_with("HTTP/1.1 200"));
        let waited = time_to_close(&mut partial).await;
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        let waited = time_to_close(&mut silent).await;
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert!(request(address, GET).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_head_trickled_byte_by_byte_is_cut_off_at_the_header_timeout() {
        let address = server(16).await;
        let mut slow = TcpStream::connect(address).await.unwrap();
        let started = Instant::now();
        let head = b"GET / HTTP/1.1\r\nhost: x\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        let mut closed = false;
        for byte in head {
            // Each byte comes well within any idle limit, but the head as a whole is too slow.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if slow.write_all(&[*byte]).await.is_err() {
                closed = true;
                break;
            }
        }
        if !closed {
            let mut buf = [0u8; 64];
            let n = slow.read(&mut buf).await.unwrap_or(0);
            assert_eq!(n, 0, "answered: {}", String::from_utf8_lossy(&buf[..n]));
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_stalled_body_is_cut_off_and_a_slow_handler_is_not() {
        let address = server(16).await;
        let mut stalled = TcpStream::connect(address).await.unwrap();
        stalled
            .write_all(
                b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100000000\r\n\r\n0123456789",
            )
            .await
            .unwrap();
        // A body sent in pieces, each within the limit, is read in full.
        let mut steady = TcpStream::connect(address).await.unwrap();
        steady
            .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 8\r\n\r\n")
            .await
            .unwrap();
        for piece in [b"ab", b"cd", b"ef", b"gh"] {
            tokio::time::sleep(SHORT / 2).await;
            steady.write_all(piece).await.unwrap();
        }
        let mut buf = vec![0u8; 4096];
        let n = steady.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("\r\n8"),
            "{text}"
        );
        let waited = time_to_close(&mut stalled).await;
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // A handler that takes longer than every limit still answers.
        let answer = request(
            address,
            "POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc",
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("\r\n3"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn kept_alive_connections_close_when_idle_not_while_busy() {
        let address = server(16).await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        let mut buf = vec![0u8; 4096];
        // Requests every half limit keep one connection for longer than the limit in all.
        let started = Instant::now();
        for _ in 0..4 {
            stream.write_all(GET.as_bytes()).await.unwrap();
            let n = stream.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            tokio::time::sleep(SHORT / 2).await;
        }
        assert!(started.elapsed() > SHORT);
        let waited = time_to_close(&mut stream).await;
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_its_response_is_closed() {
        let address = server(16).await;
        let mut reader = TcpStream::connect(address).await.unwrap();
        reader
            .write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        // Read nothing for a while: the server's writes block, then it gives up.
        tokio::time::sleep(SHORT * 4).await;
        let mut received = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => received += n,
                Err(_) => panic!("not closed"),
            }
        }
        assert!(
            received < 64 << 20,
            "the whole response arrived: {received}"
        );
    }

    #[tokio::test]
    async fn connections_beyond_the_bound_wait_for_a_free_slot() {
        let address = server(2).await;
        let mut first = TcpStream::connect(address).await.unwrap();
        let _second = TcpStream::connect(address).await.unwrap();
        // The third is accepted by the kernel but not served until a slot frees.
        let mut third = TcpStream::connect(address).await.unwrap();
        third.write_all(GET.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        assert!(
            tokio::time::timeout(SHORT / 4, third.read(&mut buf))
                .await
                .is_err(),
            "served beyond the bound"
        );
        // The silent ones are closed at the header timeout; then the third is served.
        time_to_close(&mut first).await;
        let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
}
