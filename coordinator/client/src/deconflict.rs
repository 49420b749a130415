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

/// One alert, as the requester reads it; in JSON an object whose `kind` is
/// `deconfliction` or `watch`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertReport {
    /// Another agency registered one of the requester's targets.
    Deconfliction(DeconflictionReport),
    /// Records imported at some nodes were evaluated against a watch.
    Watch(WatchReport),
}

impl AlertReport {
    /// The coordinator's id (`--after` takes it).
    pub fn id(&self) -> u64 {
        match self {
            AlertReport::Deconfliction(d) => d.id,
            AlertReport::Watch(w) => w.id,
        }
    }

    /// The deconfliction alert, if it is one.
    pub fn deconfliction(&self) -> Option<&DeconflictionReport> {
        match self {
            AlertReport::Deconfliction(d) => Some(d),
            AlertReport::Watch(_) => None,
        }
    }

    /// The watch alert, if it is one.
    pub fn watch(&self) -> Option<&WatchReport> {
        match self {
            AlertReport::Watch(w) => Some(w),
            AlertReport::Deconfliction(_) => None,
        }
    }
}

/// A watch's round, decrypted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WatchReport {
    /// The coordinator's id.
    pub id: u64,
    /// When the coordinator collected it (RFC 3339, UTC).
    pub raised_at: String,
    /// The watch.
    pub watch_id: String,
    /// Whether a new record holds the identifier somewhere.
    pub hit: bool,
    /// In how many of the jurisdictions that evaluated it (not which).
    pub jurisdictions: u32,
    /// How many jurisdictions' new records were evaluated in this round.
    pub evaluated_by: u32,
}

/// A deconfliction alert, opened and checked.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeconflictionReport {
    /// The coordinator's id (`--after` takes it).
    pub id: u64,
    /// When it was raised (RFC 3339, UTC).
    pub raised_at: String,
    /// The requester's registration it concerns.
    pub registration: String,
    /// The other agency, as the federation file names it.
    pub other_agency: String,
    /// Its registration.
    pub other_registration: String,
    /// Its contact and case, as it sealed them.
    pub other: SealedContact,
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
        let pseudonym = secret.pseudonym.to_bytes();
        let agency = self.config.agency()?.to_owned();
        let sealed_contact = secret.seal_key.seal(
            &contact_context(&pseudonym, &agency, options.until),
            &contact,
        );
        if sealed_contact.len() > fedq_proto::limits::MAX_SEALED_CONTACT_BYTES {
            bail!("the contact and case reference are too long to register");
        }
        let mut wrapped = zeroize::Zeroizing::new(secret.seal_key.to_bytes().to_vec());
        wrapped.extend_from_slice(&pseudonym);
        let wrapped_key = self.wrap_key()?.seal(WRAP_CONTEXT, &wrapped);
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
    /// alone, derived from its id and signing key.
    fn wrap_key(&self) -> anyhow::Result<SealKey> {
        Ok(SealKey::derive(WRAP_LABEL, &self.config.own_secret()?))
    }

    /// What opens this requester's alerts: its wrap key and agency, and
    /// its lookup key with the federation's count encoding (watches).
    fn alert_opener(&self) -> anyhow::Result<AlertOpener> {
        let lookup = match self.load_keys() {
            Ok((secret, _)) => Some((
                secret,
                fedq_crypto::lookup::CountEncoding::for_nodes(self.config.federation.nodes.len())?,
            )),
            // Without lookup keys there are no watches to decrypt.
            Err(_) => None,
        };
        Ok(AlertOpener {
            wrap: self.wrap_key()?,
            agency: self.config.agency()?.to_owned(),
            lookup,
        })
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

    /// The requester's live alerts after `after`, each opened and checked
    /// (all of them: the coordinator answers in pages).
    pub async fn alerts(&mut self, mut after: u64) -> anyhow::Result<Vec<Checked>> {
        let opener = self.alert_opener()?;
        let mut checked = Vec::new();
        loop {
            let page = self
                .client
                .alerts(v1::AlertsRequest { after })
                .await
                .map_err(status_error)?
                .into_inner()
                .alerts;
            let Some(last) = page.last().map(|a| a.id) else {
                return Ok(checked);
            };
            if last <= after {
                bail!("the coordinator sent alerts out of order");
            }
            after = last;
            checked.extend(page.iter().filter_map(|a| opener.open(a)));
        }
    }

    /// Calls `each` with every alert after `after`, then with each new one as
    /// the coordinator raises it, until the stream ends or `each` says stop.
    pub async fn follow_alerts(
        &mut self,
        after: u64,
        mut each: impl FnMut(Checked) -> std::ops::ControlFlow<()>,
    ) -> anyhow::Result<()> {
        let opener = self.alert_opener()?;
        let mut stream = self
            .client
            .follow_alerts(v1::AlertsRequest { after })
            .await
            .map_err(status_error)?
            .into_inner();
        while let Some(alert) = stream.message().await.map_err(status_error)? {
            if let Some(checked) = opener.open(&alert) {
                if each(checked).is_break() {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// An alert as the requester received it: opened and checked, or refused
/// with why (the coordinator relays alerts and could forge them).
pub type Checked = Result<AlertReport, UnverifiedAlert>;

/// An alert that does not check out: not shown as a match.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UnverifiedAlert {
    /// The coordinator's id of it.
    pub id: u64,
    /// What failed.
    pub reason: &'static str,
}

/// Associated data of the wrapped key.
const WRAP_CONTEXT: &[u8] = b"wrapped deconfliction key";

/// Associated data of a sealed contact: what it is about (the pseudonym),
/// who sealed it (the agency) and until when, so that a relaying
/// coordinator can neither pass it off as another agency's, nor as about
/// another target, nor revive it after it ended.
fn contact_context(pseudonym: &[u8; 32], agency: &str, until: i64) -> Vec<u8> {
    let mut context = Vec::with_capacity(40 + agency.len());
    context.extend_from_slice(pseudonym);
    context.extend_from_slice(&until.to_be_bytes());
    context.extend_from_slice(agency.as_bytes());
    context
}

/// Opens alerts with the requester's wrap key, knowing its agency, and
/// decrypts watch alerts with its lookup key.
struct AlertOpener {
    wrap: SealKey,
    agency: String,
    lookup: Option<(
        fedq_crypto::lookup::FheSecretKey,
        fedq_crypto::lookup::CountEncoding,
    )>,
}

impl AlertOpener {
    /// The requester's wrapped key gives the target's key and pseudonym; the
    /// other agency's contact must open under them, as sealed by the agency
    /// the alert names, for a registration still running. An alert of a
    /// kind this client does not know is skipped.
    fn open(&self, alert: &v1::Alert) -> Option<Checked> {
        let d = match &alert.kind {
            Some(v1::alert::Kind::Deconfliction(d)) => d,
            Some(v1::alert::Kind::Watch(w)) => return Some(self.decrypt(alert, w)),
            None => return None,
        };
        let refuse = |reason| {
            Some(Err(UnverifiedAlert {
                id: alert.id,
                reason,
            }))
        };
        let Some(unwrapped) = self
            .wrap
            .open(WRAP_CONTEXT, &d.wrapped_key)
            .ok()
            .map(zeroize::Zeroizing::new)
            .filter(|bytes| bytes.len() == 64)
        else {
            return refuse("its key is not one this requester wrapped");
        };
        let mut key = [0u8; 32];
        key.copy_from_slice(&unwrapped[..32]);
        let seal_key = SealKey::from_bytes(key);
        let mut pseudonym = [0u8; 32];
        pseudonym.copy_from_slice(&unwrapped[32..]);
        if d.other_agency == self.agency {
            return refuse("it names this requester's own agency");
        }
        if d.other_until < chrono::Utc::now().timestamp() {
            return refuse("the other registration has ended");
        }
        let context = contact_context(&pseudonym, &d.other_agency, d.other_until);
        let Some(other) = seal_key
            .open(&context, &d.other_sealed_contact)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<SealedContact>(&bytes).ok())
        else {
            return refuse("the contact was not sealed by that agency for this target");
        };
        Some(Ok(AlertReport::Deconfliction(DeconflictionReport {
            id: alert.id,
            raised_at: rfc3339(alert.raised_at),
            registration: d.registration.clone(),
            other_agency: d.other_agency.clone(),
            other_registration: d.other_registration.clone(),
            other,
        })))
    }

    /// A watch's round: the sum of the evaluating nodes' encrypted counts,
    /// under this requester's key and this federation's count encoding.
    fn decrypt(&self, alert: &v1::Alert, watch: &v1::WatchAlert) -> Checked {
        let refuse = |reason| UnverifiedAlert {
            id: alert.id,
            reason,
        };
        let (secret, encoding) = self
            .lookup
            .as_ref()
            .ok_or_else(|| refuse("no lookup key here to decrypt a watch with"))?;
        let count = fedq_crypto::lookup::EncryptedCount::from_bytes(&watch.answer)
            .map_err(|_| refuse("its encrypted count is malformed"))?;
        count
            .check_encoding(*encoding)
            .map_err(|_| refuse("its count is encoded for a federation of another size"))?;
        let jurisdictions = count.decrypt(secret, *encoding);
        if jurisdictions > watch.nodes {
            return Err(refuse("it counts more jurisdictions than evaluated it"));
        }
        Ok(AlertReport::Watch(WatchReport {
            id: alert.id,
            raised_at: rfc3339(alert.raised_at),
            watch_id: watch.watch_id.clone(),
            hit: jurisdictions > 0,
            jurisdictions,
            evaluated_by: watch.nodes,
        }))
    }
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PSEUDONYM: [u8; 32] = [7; 32];

    /// A requester of `agency` with its wrap key, and the target's key.
    fn opener(agency: &str) -> (AlertOpener, SealKey) {
        (
            AlertOpener {
                wrap: SealKey::derive(WRAP_LABEL, agency.as_bytes()),
                agency: agency.to_owned(),
                lookup: None,
            },
            SealKey::from_bytes([3; 32]),
        )
    }

    /// The alert a coordinator relays: `opener`'s wrapped key, and a contact
    /// sealed as `sealed_by` for `sealed_until`, labelled `labelled`.
    fn alert(
        opener: &AlertOpener,
        target: &SealKey,
        (sealed_by, sealed_until): (&str, i64),
        (labelled, labelled_until): (&str, i64),
    ) -> v1::Alert {
        let mut wrapped = target.to_bytes().to_vec();
        wrapped.extend_from_slice(&PSEUDONYM);
        let contact = serde_json::to_vec(&SealedContact {
            contact: "duty@customs.example".to_owned(),
            case_reference: "CU-88".to_owned(),
        })
        .expect("json");
        v1::Alert {
            id: 9,
            raised_at: 0,
            kind: Some(v1::alert::Kind::Deconfliction(v1::DeconflictionAlert {
                registration: "r1".to_owned(),
                wrapped_key: opener.wrap.seal(WRAP_CONTEXT, &wrapped),
                other_agency: labelled.to_owned(),
                other_registration: "r2".to_owned(),
                other_sealed_contact: target.seal(
                    &contact_context(&PSEUDONYM, sealed_by, sealed_until),
                    &contact,
                ),
                other_until: labelled_until,
            })),
        }
    }

    fn reason(checked: Option<Checked>) -> &'static str {
        match checked {
            Some(Err(unverified)) => unverified.reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_genuine_alert_opens_and_a_relabelled_or_revived_one_does_not() {
        let (police, target) = opener("police");
        let until = chrono::Utc::now().timestamp() + 3_600;
        let genuine = police.open(&alert(
            &police,
            &target,
            ("customs", until),
            ("customs", until),
        ));
        let report = genuine.expect("known kind").expect("checks out");
        let report = report.deconfliction().expect("a deconfliction alert");
        assert_eq!(report.other.contact, "duty@customs.example");
        assert_eq!(report.other_agency, "customs");

        // Relabelled as another agency's contact.
        let relabelled = alert(&police, &target, ("customs", until), ("navy", until));
        assert!(reason(police.open(&relabelled)).contains("not sealed by that agency"));
        // Its own contact handed back as someone else's.
        let own = alert(&police, &target, ("police", until), ("customs", until));
        assert!(reason(police.open(&own)).contains("not sealed by that agency"));
        // ... or labelled as its own agency's.
        let own_label = alert(&police, &target, ("police", until), ("police", until));
        assert!(reason(police.open(&own_label)).contains("own agency"));
        // Revived after it ended, or with its end moved.
        let past = chrono::Utc::now().timestamp() - 10;
        let ended = alert(&police, &target, ("customs", past), ("customs", past));
        assert!(reason(police.open(&ended)).contains("ended"));
        let extended = alert(&police, &target, ("customs", past), ("customs", until));
        assert!(reason(police.open(&extended)).contains("not sealed by that agency"));
        // Another requester's wrapped key.
        let (customs, _) = opener("customs");
        let theirs = alert(&customs, &target, ("navy", until), ("navy", until));
        assert!(reason(police.open(&theirs)).contains("not one this requester wrapped"));
    }

    #[test]
    fn an_alert_report_is_tagged_by_kind_in_json() {
        let report = AlertReport::Watch(WatchReport {
            id: 3,
            raised_at: String::new(),
            watch_id: "w".to_owned(),
            hit: true,
            jurisdictions: 1,
            evaluated_by: 2,
        });
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["kind"], "watch");
        assert_eq!(json["jurisdictions"], 1);
    }
}
