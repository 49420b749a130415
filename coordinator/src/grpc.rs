//! gRPC adapter of the coordinator.

use std::sync::Arc;

use fedq_proto::outcome::NodeOutcome;
use fedq_proto::v1::{self, coordinator_server::Coordinator};
use fedq_transport::tls::peer_common_name;
use tonic::{Request, Response, Status};

use crate::service::CoordinatorService;

/// Implements the generated `Coordinator` service on [`CoordinatorService`].
pub struct CoordinatorGrpcAdapter(pub Arc<CoordinatorService>);

fn caller<T>(request: &Request<T>) -> Result<String, Status> {
    peer_common_name(request).ok_or_else(|| Status::unauthenticated("caller is not authenticated"))
}

#[tonic::async_trait]
impl Coordinator for CoordinatorGrpcAdapter {
    async fn register_key(
        &self,
        request: Request<v1::RegisterKeyRequest>,
    ) -> Result<Response<v1::RegisterKeyResponse>, Status> {
        let caller = caller(&request)?;
        let key_id = self
            .0
            .register_key(&caller, &request.into_inner().public_key)?;
        Ok(Response::new(v1::RegisterKeyResponse {
            key_id: key_id.as_str().to_owned(),
        }))
    }

    async fn oprf(
        &self,
        request: Request<v1::OprfRequest>,
    ) -> Result<Response<v1::OprfResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.0.oprf(&caller, request.into_inner()).await?,
        ))
    }

    async fn lookup(
        &self,
        request: Request<v1::LookupRequest>,
    ) -> Result<Response<v1::LookupResponse>, Status> {
        let caller = caller(&request)?;
        let (query_id, merged) = self.0.lookup(&caller, request.into_inner()).await?;
        let nodes = merged
            .nodes
            .into_iter()
            .map(|(node, result)| match result {
                Ok(ok) => v1::NodeStatus {
                    node,
                    outcome: NodeOutcome::Ok.into(),
                    reason: String::new(),
                    compute_micros: ok.compute_micros,
                    disclosure: ok.disclosure.into(),
                },
                Err(e) => v1::NodeStatus {
                    node,
                    outcome: e.outcome.into(),
                    reason: e.reason,
                    ..Default::default()
                },
            })
            .collect();
        Ok(Response::new(v1::LookupResponse {
            query_id,
            answers: merged.answers.iter().map(|a| a.to_bytes()).collect(),
            nodes,
            disclosed: merged
                .disclosed
                .into_iter()
                .map(|(node, answers)| v1::NodeAnswers { node, answers })
                .collect(),
        }))
    }

    async fn stats(
        &self,
        request: Request<v1::StatsRequest>,
    ) -> Result<Response<v1::StatsResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.0.stats(&caller, request.into_inner()).await?,
        ))
    }

    async fn catalog(
        &self,
        request: Request<v1::FederationCatalogRequest>,
    ) -> Result<Response<v1::FederationCatalogResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(self.0.catalog(&caller).await?))
    }

    async fn budget(
        &self,
        request: Request<v1::FederationBudgetRequest>,
    ) -> Result<Response<v1::FederationBudgetResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(self.0.budget(&caller).await?))
    }

    async fn federation_info(
        &self,
        request: Request<v1::FederationInfoRequest>,
    ) -> Result<Response<v1::FederationInfoResponse>, Status> {
        caller(&request)?;
        Ok(Response::new(self.0.federation_info().await))
    }
}
