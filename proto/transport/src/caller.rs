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
        // Health checks and reflection carry no data (reflection describes
        // the public schema) and are how operators probe a server with
        // standard tools; TLS has already checked the peer's certificate.
        if !(path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")) {
            match peer_name(request.extensions()) {
                Some(name) if (self.admission.allowed)(&name) => {}
                _ => {
                    crate::metrics::rpc_finished("unadmitted", std::time::Duration::ZERO);
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
        let started = std::time::Instant::now();
        let answer = self.inner.call(http::Request::from_parts(parts, body));
        Box::pin(async move {
            let response = answer.await?;
            // A path no service routes answers UNIMPLEMENTED at once: its
            // name (the caller's choice) never becomes a label.
            let unrouted = response
                .headers()
                .get("grpc-status")
                .is_some_and(|code| code.as_bytes() == b"12");
            let rpc = if unrouted { "unrouted" } else { route(&path) };
            crate::metrics::rpc_finished(rpc, started.elapsed());
            Ok(response)
        })
    }
}

/// The route label of a routed path: its method name, from the fixed set of
/// fedq's, health's and reflection's methods.
fn route(path: &str) -> &'static str {
    const ROUTES: &[&str] = &[
        "Lookup",
        "Oprf",
        "Stats",
        "Info",
        "Catalog",
        "Budget",
        "RegisterKey",
        "FederationInfo",
        "Checkpoint",
        "DeconflictRegister",
        "DeconflictList",
        "DeconflictCancel",
        "Alerts",
        "FollowAlerts",
        "WatchAdd",
        "WatchList",
        "WatchCancel",
        "WatchResults",
        "Check",
        "Watch",
        "ServerReflectionInfo",
    ];
    let method = path.rsplit('/').next().unwrap_or_default();
    ROUTES
        .iter()
        .find(|route| **route == method)
        .copied()
        .unwrap_or("other")
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

#[cfg(test)]
mod tests {
    use fedq_proto::prost::Message;

    #[test]
    fn every_fedq_method_has_its_own_route_label() {
        let set = prost_types::FileDescriptorSet::decode(fedq_proto::v1::FILE_DESCRIPTOR_SET)
            .expect("the build's own descriptor set");
        let methods = set
            .file
            .iter()
            .flat_map(|f| &f.service)
            .flat_map(|s| &s.method)
            .filter_map(|m| m.name.as_deref());
        for method in methods {
            assert_eq!(super::route(&format!("/fedq.v1.X/{method}")), method);
        }
    }
}
