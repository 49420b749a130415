//! Admission before decoding: the caller's certificate name is checked, and
//! the request body is bounded per RPC, before any message byte is decoded.
//!
//! tonic decodes a whole message (up to the service's limit) before the
//! handler runs, so a check in the handler comes after the memory is spent.
//! This layer sits below tonic: a caller that is not allowed gets
//! `PermissionDenied` without its body being read at all, and an allowed
//! caller's body is cut off with `ResourceExhausted` once it exceeds what
//! that RPC can legitimately need.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;

/// Who may call, and how many body bytes each RPC path may carry.
#[derive(Clone)]
pub struct Admission {
    allowed: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    body_limit: Arc<dyn Fn(&str) -> usize + Send + Sync>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").finish_non_exhaustive()
    }
}

impl Admission {
    /// `allowed` decides on the caller's certificate common name;
    /// `body_limit` gives the most bytes a request to a path may carry.
    pub fn new(
        allowed: impl Fn(&str) -> bool + Send + Sync + 'static,
        body_limit: impl Fn(&str) -> usize + Send + Sync + 'static,
    ) -> Self {
        Self {
            allowed: Arc::new(allowed),
            body_limit: Arc::new(body_limit),
        }
    }
}

impl<S> tower::Layer<S> for Admission {
    type Service = Admitted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admitted {
            inner,
            admission: self.clone(),
        }
    }
}

/// The service behind [`Admission`].
#[derive(Clone, Debug)]
pub struct Admitted<S> {
    inner: S,
    admission: Admission,
}

/// Common name of the leaf certificate of a TLS peer, from a request's
/// connection info (tonic puts it in the extensions).
pub fn peer_name(extensions: &http::Extensions) -> Option<String> {
    let certs = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    crate::tls::common_name(certs.first()?.as_ref())
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<Body>> for Admitted<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        // Health checks carry no data and are how operators probe liveness.
        if !path.starts_with("/grpc.health.") {
            match peer_name(request.extensions()) {
                Some(name) if (self.admission.allowed)(&name) => {}
                _ => {
                    let status = Status::permission_denied("caller not allowed");
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        }
        let limit = (self.admission.body_limit)(&path);
        let (parts, body) = request.into_parts();
        let body = Body::new(Limited {
            inner: body,
            left: limit,
            limit,
        });
        Box::pin(self.inner.call(http::Request::from_parts(parts, body)))
    }
}

/// A request body that fails with `ResourceExhausted` past `limit` bytes.
struct Limited {
    inner: Body,
    left: usize,
    limit: usize,
}

impl http_body::Body for Limited {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if data.len() > this.left {
                        return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                            "request larger than {} bytes, the most this call accepts",
                            this.limit
                        )))));
                    }
                    this.left -= data.len();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
