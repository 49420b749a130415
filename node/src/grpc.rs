//! gRPC adapter of the node: wire types in, domain call, status out.

use std::sync::Arc;

use fedq_crypto::lookup::KeyId;
use fedq_crypto::{Bucket, IdentifierKind};
use fedq_proto::v1::{self, node_server::Node};
use tonic::{Request, Response, Status};

use crate::service::{Caller, LookupQuery, NodeService, QueryItem};
use crate::tls::peer_common_name;

/// Implements the generated `Node` service on top of [`NodeService`].
pub struct NodeGrpcAdapter(pub Arc<NodeService>);

fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    peer_common_name(request).map(Caller).ok_or_else(|| Status::unauthenticated("caller is not authenticated"))
}

/// Converts a wire kind into the domain kind.
pub fn kind_from_wire(value: i32) -> Result<IdentifierKind, Status> {
    u8::try_from(value)
        .ok()
        .and_then(IdentifierKind::from_code)
        .ok_or_else(|| Status::invalid_argument("unknown identifier kind"))
}

/// Converts a domain kind into the wire kind.
pub fn kind_to_wire(kind: IdentifierKind) -> i32 {
    i32::from(kind.code())
}

impl TryFrom<v1::NodeLookupRequest> for LookupQuery {
    type Error = Status;

    fn try_from(request: v1::NodeLookupRequest) -> Result<Self, Status> {
        let context = request.context.unwrap_or_default();
        let items = request
            .items
            .into_iter()
            .map(|item| {
                Ok(QueryItem {
                    kind: kind_from_wire(item.kind)?,
                    bucket: Bucket(item.bucket),
                    encrypted_tag: item.encrypted_tag,
                })
            })
            .collect::<Result<_, Status>>()?;
        Ok(Self {
            query_id: request.query_id,
            requester: request.requester,
            key_id: KeyId::parse(&request.key_id).map_err(|_| Status::invalid_argument("malformed key id"))?,
            public_key: request.public_key,
            purpose: context.purpose,
            case_reference: context.case_reference,
            items,
        })
    }
}

#[tonic::async_trait]
impl Node for NodeGrpcAdapter {
    async fn lookup(&self, request: Request<v1::NodeLookupRequest>) -> Result<Response<v1::NodeLookupResponse>, Status> {
        let caller = caller(&request)?;
        let query = LookupQuery::try_from(request.into_inner())?;
        let query_id = query.query_id.clone();
        let answer = self.0.lookup(&caller, query).await?;
        Ok(Response::new(v1::NodeLookupResponse {
            query_id,
            answers: answer.answers.iter().map(|a| a.to_bytes()).collect(),
            compute_micros: answer.compute.as_micros() as u64,
        }))
    }

    async fn info(&self, request: Request<v1::NodeInfoRequest>) -> Result<Response<v1::NodeInfoResponse>, Status> {
        caller(&request)?;
        let info = self.0.info();
        Ok(Response::new(v1::NodeInfoResponse {
            node_id: info.node_id,
            jurisdiction: info.jurisdiction,
            bucket_bits: u32::from(info.bucket_bits),
            tag_bits: u32::from(info.tag_bits),
            padded_candidates: info.padded_candidates as u32,
            kinds: IdentifierKind::ALL.iter().map(|&k| kind_to_wire(k)).collect(),
        }))
    }
}
