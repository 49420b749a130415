//! gRPC adapter of the coordinator.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

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

/// A follower looks again at least this often even when no alert was
/// raised: alerts expire, and a removed requester must stop being served.
const FOLLOW_RECHECK: Duration = Duration::from_secs(5);

fn registration(r: crate::deconfliction::Registration) -> v1::DeconflictRegistration {
    v1::DeconflictRegistration {
        id: r.id,
        agency: r.agency,
        registered_at: r.registered_at,
        until: r.until,
        matches: r.matches,
    }
}

#[tonic::async_trait]
impl Coordinator for CoordinatorGrpcAdapter {
    type FollowAlertsStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::Alert, Status>> + Send>>;

    async fn watch_add(
        &self,
        request: Request<v1::WatchAddRequest>,
    ) -> Result<Response<v1::WatchAddResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(
            self.0.watch_add(&caller, request.into_inner()).await?,
        ))
    }

    async fn watch_list(
        &self,
        request: Request<v1::WatchListRequest>,
    ) -> Result<Response<v1::WatchListResponse>, Status> {
        let caller = caller(&request)?;
        let watches = self.0.watch_list(&caller)?;
        Ok(Response::new(v1::WatchListResponse {
            watches: watches
                .into_iter()
                .map(|w| v1::WatchInfo {
                    watch_id: w.id,
                    kind: w.kind,
                    registered_at: w.registered_at,
                    until: w.until,
                })
                .collect(),
        }))
    }

    async fn watch_cancel(
        &self,
        request: Request<v1::WatchCancelRequest>,
    ) -> Result<Response<v1::WatchCancelResponse>, Status> {
        let caller = caller(&request)?;
        let nodes = self
            .0
            .watch_cancel(&caller, &request.into_inner().watch_id)
            .await?;
        Ok(Response::new(v1::WatchCancelResponse { nodes }))
    }

    async fn deconflict_register(
        &self,
        request: Request<v1::DeconflictRegisterRequest>,
    ) -> Result<Response<v1::DeconflictRegisterResponse>, Status> {
        let caller = caller(&request)?;
        let registration = self
            .0
            .deconflict_register(&caller, request.into_inner())
            .map(registration)?;
        Ok(Response::new(v1::DeconflictRegisterResponse {
            registration: Some(registration),
        }))
    }

    async fn deconflict_list(
        &self,
        request: Request<v1::DeconflictListRequest>,
    ) -> Result<Response<v1::DeconflictListResponse>, Status> {
        let caller = caller(&request)?;
        let registrations = self.0.deconflict_list(&caller)?;
        Ok(Response::new(v1::DeconflictListResponse {
            registrations: registrations.into_iter().map(registration).collect(),
        }))
    }

    async fn deconflict_cancel(
        &self,
        request: Request<v1::DeconflictCancelRequest>,
    ) -> Result<Response<v1::DeconflictCancelResponse>, Status> {
        let caller = caller(&request)?;
        self.0
            .deconflict_cancel(&caller, &request.into_inner().id)?;
        Ok(Response::new(v1::DeconflictCancelResponse {}))
    }

    async fn alerts(
        &self,
        request: Request<v1::AlertsRequest>,
    ) -> Result<Response<v1::AlertsResponse>, Status> {
        let caller = caller(&request)?;
        let alerts = self.0.alerts(&caller, request.into_inner().after)?;
        Ok(Response::new(v1::AlertsResponse { alerts }))
    }

    async fn follow_alerts(
        &self,
        request: Request<v1::AlertsRequest>,
    ) -> Result<Response<Self::FollowAlertsStream>, Status> {
        let caller = caller(&request)?;
        let mut after = request.into_inner().after;
        // Refused at once rather than on the stream: the caller sees a status.
        let first = self.0.alerts(&caller, after)?;
        let service = Arc::clone(&self.0);
        let mut raised = service.alerts_raised();
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut batch = Ok(first);
            loop {
                let alerts = match batch {
                    Ok(alerts) => alerts,
                    Err(e) => {
                        let _ = sender.send(Err(Status::from(e))).await;
                        return;
                    }
                };
                // A full page: the next one follows at once.
                let full = alerts.len() >= crate::deconfliction::MAX_ALERTS_PER_CALL;
                for alert in alerts {
                    after = after.max(alert.id);
                    if sender.send(Ok(alert)).await.is_err() {
                        return;
                    }
                }
                if !full {
                    tokio::select! {
                        changed = raised.changed() => if changed.is_err() { return },
                        () = tokio::time::sleep(FOLLOW_RECHECK) => {}
                        () = sender.closed() => return,
                    }
                }
                batch = service.alerts(&caller, after);
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn register_key(
        &self,
        request: Request<v1::RegisterKeyRequest>,
    ) -> Result<Response<v1::RegisterKeyResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let key_id = self
            .0
            .register_key(&caller, &request.public_key, &request.expansion_key)?;
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
