//! Deconfliction from the requester's side: the target's pseudonym from t
//! nodes' partial evaluations (threshold OPRF, combined here and nowhere
//! else), the contact sealed under the target's key, registration, and
//! alerts opened with the requester's own key.

use anyhow::{bail, Context};
use fedq_crypto::toprf::{SealKey, ThresholdClient};
use fedq_crypto::{IdentifierKind, NormalForm};
use fedq_proto::outcome::NodeOutcome;
use fedq_proto::v1;
use serde::{Deserialize, Serialize};

use crate::report::LookupInput;
use crate::requester::{status_error, Requester};

/// What a registration states besides the identifier.
#[derive(Debug, Clone)]
pub struct DeconflictOptions {
    /// Purpose, checked by every node's policy (`policy.purposes.deconflict`).
    pub purpose: String,
    /// The agency's case reference (sealed; the coordinator never reads it).
    pub case_reference: String,
    /// Legal basis (else `legal_basis` of client.toml).
    pub legal_basis: Option<String>,
    /// How to reach the agency's desk (sealed).
    pub contact: String,
    /// End of the registration, Unix seconds.
    pub until: i64,
}

/// What the other agency's registration says, once opened.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SealedContact {
    /// How to reach its desk.
    pub contact: String,
    /// Its case reference.
    pub case_reference: String,
}

/// One alert, as the requester reads it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AlertReport {
    /// The coordinator's id (`--after` takes it).
    pub id: u64,
    /// When it was raised (RFC 3339, UTC).
    pub raised_at: String,
    /// `deconfliction`.
    pub kind: &'static str,
    /// The requester's registration it concerns.
    pub registration: String,
    /// The other agency, as the federation file names it.
    pub other_agency: String,
    /// Its registration.
    pub other_registration: String,
    /// Its contact and case, or `None` when the seal does not open (the
    /// contact was not sealed by a holder of the same identifier).
    pub other: Option<SealedContact>,
}

/// Label of the key that wraps each registration's target key for its owner.
const WRAP_LABEL: &str = "fedq deconfliction wrap v1";

impl Requester {
    /// Registers a target for the requester's agency; returns the
    /// registration (with how many other agencies' registrations it met).
    pub async fn deconflict_register(
        &mut self,
        input: &LookupInput,
        options: &DeconflictOptions,
    ) -> anyhow::Result<v1::DeconflictRegistration> {
        if options.contact.trim().is_empty() {
            bail!("--contact must say how the other agency reaches you");
        }
        if options.contact.len() > fedq_proto::limits::MAX_CONTACT_BYTES {
            bail!(
                "--contact has at most {} bytes",
                fedq_proto::limits::MAX_CONTACT_BYTES
            );
        }
        let normal = fedq_crypto::normalise(input.kind, &input.value)
            .with_context(|| format!("invalid {} identifier, nothing was sent", input.kind))?;
        let context = v1::RequestContext {
            purpose: options.purpose.clone(),
            case_reference: options.case_reference.clone(),
            legal_basis: options.legal_basis.clone().unwrap_or_default(),
            envelope: None,
        };
        let secret = self.pseudonym(input.kind, &normal, &context).await?;
        let contact = serde_json::to_vec(&SealedContact {
            contact: options.contact.clone(),
            case_reference: options.case_reference.clone(),
        })?;
        let sealed_contact = secret.seal_key.seal(&contact);
        if sealed_contact.len() > fedq_proto::limits::MAX_SEALED_CONTACT_BYTES {
            bail!("the contact and case reference are too long to register");
        }
        let wrapped_key = self.wrap_key()?.seal(secret.seal_key.to_bytes().as_slice());
        let mut request = v1::DeconflictRegisterRequest {
            context: None,
            pseudonym: secret.pseudonym.to_bytes().to_vec(),
            sealed_contact,
            wrapped_key,
            until: options.until,
        };
        let envelope = self.config.sign(
            "deconflict-register",
            &context,
            fedq_proto::payload::deconflict_register_payload_hash(&request),
        )?;
        request.context = Some(v1::RequestContext {
            envelope: Some(envelope),
            ..context
        });
        self.client
            .deconflict_register(request)
            .await
            .map_err(status_error)?
            .into_inner()
            .registration
            .context("the coordinator answered without the registration")
    }

    /// The target's pseudonym and seal key: one blinded element per node
    /// (fresh blinds each), partial evaluations checked against each node's
    /// public share, any t of them combined.
    async fn pseudonym(
        &mut self,
        kind: IdentifierKind,
        normal: &NormalForm,
        context: &v1::RequestContext,
    ) -> anyhow::Result<fedq_crypto::toprf::DeconflictionSecret> {
        let keys = self.config.federation.deconfliction.clone().context(
            "this federation has no deconfliction key (federation.toml has no [deconfliction]); \
             a federation made by `fedq federation init` has one",
        )?;
        let indices: Vec<u16> = keys.shares.iter().map(|(_, s)| s.index()).collect();
        let (mut client, elements) = ThresholdClient::blind(&[(kind, normal)], &indices)?;
        let kinds = vec![i32::from(kind.code())];
        let mut batches = Vec::with_capacity(keys.shares.len());
        for ((node, _), elements) in keys.shares.iter().zip(elements) {
            let blinded: Vec<Vec<u8>> = elements.iter().map(|e| e.to_vec()).collect();
            let envelope = self.config.sign(
                "deconflict",
                context,
                fedq_proto::payload::deconflict_oprf_payload_hash(node, &kinds, &blinded),
            )?;
            batches.push(v1::OprfNodeBatch {
                node: node.clone(),
                envelope: Some(envelope),
                blinded,
            });
        }
        let response = self
            .client
            .oprf(v1::OprfRequest {
                context: Some(context.clone()),
                kinds,
                nodes: batches,
                key: v1::OprfKey::Deconfliction.into(),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        let mut problems = Vec::new();
        for result in response.nodes {
            let status = result.status.unwrap_or_default();
            let Some(share) = keys.share(&status.node) else {
                continue;
            };
            let accepted = match (status.outcome(), result.response) {
                (NodeOutcome::Ok, Some(answer))
                    if answer.share_index == u32::from(share.index()) =>
                {
                    client
                        .accept(share, &answer.evaluated, &answer.proof)
                        .map_err(|e| e.to_string())
                }
                (NodeOutcome::Ok, _) => Err("answered for another share".to_owned()),
                (outcome, _) => Err(format!("{}: {}", outcome.word(), status.reason)),
            };
            if let Err(problem) = accepted {
                problems.push(format!("{}: {problem}", status.node));
            }
        }
        let needed = usize::from(keys.public.threshold());
        if client.accepted() < needed {
            bail!(
                "deconfliction needs {needed} nodes, {} answered with a valid proof:\n  {}",
                client.accepted(),
                problems.join("\n  ")
            );
        }
        client
            .finish(&keys.public)?
            .pop()
            .context("no pseudonym was computed")
    }

    /// The key that wraps each registration's target key for this requester
    /// alone, derived from its signing key.
    fn wrap_key(&self) -> anyhow::Result<SealKey> {
        let text = self.config.signing_key_text()?;
        Ok(SealKey::derive(WRAP_LABEL, text.as_bytes()))
    }

    /// The requester's live registrations.
    pub async fn deconflict_list(&mut self) -> anyhow::Result<Vec<v1::DeconflictRegistration>> {
        Ok(self
            .client
            .deconflict_list(v1::DeconflictListRequest {})
            .await
            .map_err(status_error)?
            .into_inner()
            .registrations)
    }

    /// Cancels one of the requester's registrations.
    pub async fn deconflict_cancel(&mut self, id: &str) -> anyhow::Result<()> {
        self.client
            .deconflict_cancel(v1::DeconflictCancelRequest { id: id.to_owned() })
            .await
            .map_err(status_error)?;
        Ok(())
    }

    /// The requester's live alerts after `after`, opened.
    pub async fn alerts(&mut self, after: u64) -> anyhow::Result<Vec<AlertReport>> {
        let alerts = self
            .client
            .alerts(v1::AlertsRequest { after })
            .await
            .map_err(status_error)?
            .into_inner()
            .alerts;
        let wrap = self.wrap_key()?;
        Ok(alerts.iter().filter_map(|a| open_alert(&wrap, a)).collect())
    }

    /// Calls `each` with every alert after `after`, then with each new one as
    /// the coordinator raises it, until the stream ends or `each` says stop.
    pub async fn follow_alerts(
        &mut self,
        after: u64,
        mut each: impl FnMut(AlertReport) -> std::ops::ControlFlow<()>,
    ) -> anyhow::Result<()> {
        let wrap = self.wrap_key()?;
        let mut stream = self
            .client
            .follow_alerts(v1::AlertsRequest { after })
            .await
            .map_err(status_error)?
            .into_inner();
        while let Some(alert) = stream.message().await.map_err(status_error)? {
            if let Some(report) = open_alert(&wrap, &alert) {
                if each(report).is_break() {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Opens a deconfliction alert: the requester's wrapped key gives the
/// target's key, which opens the other agency's contact. An alert of a kind
/// this client does not know is skipped.
fn open_alert(wrap: &SealKey, alert: &v1::Alert) -> Option<AlertReport> {
    let Some(v1::alert::Kind::Deconfliction(d)) = &alert.kind else {
        return None;
    };
    let other = wrap
        .open(&d.wrapped_key)
        .ok()
        .and_then(|key| <[u8; 32]>::try_from(key.as_slice()).ok())
        .map(SealKey::from_bytes)
        .and_then(|key| key.open(&d.other_sealed_contact).ok())
        .and_then(|bytes| serde_json::from_slice::<SealedContact>(&bytes).ok());
    Some(AlertReport {
        id: alert.id,
        raised_at: chrono::DateTime::from_timestamp(alert.raised_at, 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        kind: "deconfliction",
        registration: d.registration.clone(),
        other_agency: d.other_agency.clone(),
        other_registration: d.other_registration.clone(),
        other,
    })
}
