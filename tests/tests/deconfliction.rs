//! Deconfliction end to end, over real mTLS: three nodes holding shares of
//! the federation's threshold OPRF key (2 of 3), the coordinator matching
//! pseudonyms, and the `fedq` command line as each agency's investigators
//! type it. Agencies on the same target are both told the other's contact;
//! nobody else is, and no agency is told about itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use fedq_audit::{AuditLog, AuditRecord, Decision};
use fedq_client::init::add_requester;
use fedq_client::{ClientConfig, DeconflictOptions, LookupInput, Requester};
use fedq_crypto::IdentifierKind;
use fedq_proto::federation::RequesterEntry;
use fedq_tests::binaries::{run_ok, JsonLines};
use fedq_tests::hostile::records;
use fedq_tests::sandbox::{runtime, FederationSandbox};

/// The agencies besides the sandbox's own (`test-agency`: alice, bruno).
const CUSTOMS: &str = "customs-de";
const POLICE_NL: &str = "police-nl";

struct Federation {
    sandbox: FederationSandbox,
    /// client.toml per requester id.
    clients: Vec<(String, PathBuf)>,
}

fn federation() -> &'static Federation {
    static FEDERATION: OnceLock<Federation> = OnceLock::new();
    FEDERATION.get_or_init(|| {
        runtime().block_on(async {
            let sandbox = FederationSandbox::builder()
                .jurisdiction("fr")
                .jurisdiction("de")
                .jurisdiction("nl")
                .people(50)
                // Every node admits the three agencies.
                .edit_node_toml(|text| {
                    text.replace(
                        "agencies = [\"test-agency\"]",
                        &format!("agencies = [\"test-agency\", \"{CUSTOMS}\", \"{POLICE_NL}\"]"),
                    )
                })
                .build()
                .await
                .expect("sandbox starts");
            let mut clients = vec![("alice".to_owned(), sandbox.output.client.clone())];
            for (id, agency, role) in [
                ("bruno", "test-agency", "investigator"),
                ("dora", CUSTOMS, "investigator"),
                ("erik", POLICE_NL, "investigator"),
            ] {
                let client = add_requester(
                    &sandbox.dir,
                    &RequesterEntry {
                        id: id.to_owned(),
                        agency: agency.to_owned(),
                        role: role.parse().expect("role"),
                        public_key: String::new(),
                    },
                )
                .expect("requester added");
                clients.push((id.to_owned(), client));
            }
            Federation { sandbox, clients }
        })
    })
}

fn client_toml(id: &str) -> &'static Path {
    &federation()
        .clients
        .iter()
        .find(|(client, _)| client == id)
        .expect("a requester of the test")
        .1
}

fn fedq(id: &str) -> Command {
    let mut command = fedq_tests::binaries::command("fedq").expect("the fedq binary");
    command.arg("--config").arg(client_toml(id));
    command
}

/// A passport of its own for each test (tests share the federation): its
/// canonical spelling and another one that normalises to it.
fn passport(test: u8) -> (String, String) {
    let n = rand::random::<u32>() % 1_000_000;
    (
        format!("NL:X{test:02}{n:06}"),
        format!("nld x{test:02} {n:06}"),
    )
}

fn register(id: &str, value: &str, contact: &str, case: &str) -> anyhow::Result<serde_json::Value> {
    let out = run_ok(
        fedq(id).args([
            "deconflict",
            "register",
            "--kind",
            "passport",
            "--value",
            value,
            "--case",
            case,
            "--contact",
            contact,
            "--until",
            &(chrono::Utc::now().date_naive() + chrono::Days::new(30))
                .format("%Y-%m-%d")
                .to_string(),
            "--json",
        ]),
    )?;
    let list: Vec<serde_json::Value> = serde_json::from_str(&out)?;
    list.into_iter().next().context("one registration printed")
}

/// The requester's alerts about its registration `registration`.
fn alerts_for(id: &str, registration: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let out = run_ok(fedq(id).args(["alerts", "--json"]))?;
    let all: Vec<serde_json::Value> = serde_json::from_str(&out)?;
    Ok(all
        .into_iter()
        .filter(|a| a["registration"] == registration)
        .collect())
}

fn coordinator_audit() -> anyhow::Result<Vec<AuditRecord>> {
    let config = fedq_coordinator::config::CoordinatorConfig::load(
        &federation().sandbox.output.coordinator,
    )?;
    let log = AuditLog::open_at(
        &config.key_store,
        &config.audit_checkpoint,
        &config.audit_key,
    )?;
    records(&log)
}

fn node_audit(node: &str) -> anyhow::Result<Vec<AuditRecord>> {
    Ok(federation().sandbox.node(node)?.audit_records()?)
}

#[test]
fn two_agencies_on_one_target_are_both_told_the_others_contact_and_nobody_else_is(
) -> anyhow::Result<()> {
    let (target, spaced) = passport(1);
    let first = register("alice", &target, "desk@police-fr.example", "FR-2026-17")?;
    assert_eq!(first["matches"], 0);
    // The same agency again, by another investigator: not a match.
    let same_agency = register("bruno", &target, "night@police-fr.example", "FR-2026-18")?;
    assert_eq!(same_agency["matches"], 0);
    // A third agency on another target: not a match.
    let elsewhere = register("erik", &passport(2).0, "desk@police-nl.example", "NL-5")?;
    assert_eq!(elsewhere["matches"], 0);
    // Customs registers the same passport, written differently: matched
    // with both registrations of the other agency.
    let customs = register("dora", &spaced, "desk@customs-de.example", "CU-7")?;
    assert_eq!(customs["matches"], 2);

    let alice = alerts_for("alice", first["id"].as_str().context("id")?)?;
    assert_eq!(alice.len(), 1, "{alice:?}");
    assert_eq!(alice[0]["other_agency"], CUSTOMS);
    assert_eq!(alice[0]["other_registration"], customs["id"]);
    assert_eq!(alice[0]["other"]["contact"], "desk@customs-de.example");
    assert_eq!(alice[0]["other"]["case_reference"], "CU-7");
    let bruno = alerts_for("bruno", same_agency["id"].as_str().context("id")?)?;
    assert_eq!(bruno.len(), 1, "{bruno:?}");
    let dora = alerts_for("dora", customs["id"].as_str().context("id")?)?;
    let mut told: Vec<&str> = dora
        .iter()
        .map(|a| a["other"]["contact"].as_str().unwrap_or_default())
        .collect();
    told.sort_unstable();
    assert_eq!(told, ["desk@police-fr.example", "night@police-fr.example"]);
    assert!(dora.iter().all(|a| a["other_agency"] == "test-agency"));
    // Nobody else: erik's registration raised nothing, and alice was not
    // told about bruno (same agency).
    assert!(alerts_for("erik", elsewhere["id"].as_str().context("id")?)?.is_empty());
    assert!(alice.iter().all(|a| a["other_agency"] != "test-agency"));

    // Audited: the registrations and each notification at the coordinator,
    // the partial evaluations at every node (counts only).
    let audit = coordinator_audit()?;
    let notified: Vec<&AuditRecord> = audit
        .iter()
        .filter(|r| {
            r.action == "deconflict-notify"
                && r.detail.contains(customs["id"].as_str().unwrap_or("?"))
        })
        .collect();
    assert_eq!(
        notified.len(),
        4,
        "two alerts for dora, one each for alice and bruno"
    );
    assert!(audit.iter().any(|r| r.action == "deconflict-register"
        && r.case_ref == "CU-7"
        && r.decision == Decision::Admitted));
    // The coordinator's log never holds the contact.
    assert!(audit
        .iter()
        .all(|r| !r.detail.contains("customs-de.example")));
    for node in ["fr", "de", "nl"] {
        assert!(node_audit(node)?.iter().any(|r| r.action == "deconflict"
            && r.case_ref == "CU-7"
            && r.decision == Decision::Admitted));
    }
    Ok(())
}

#[test]
fn follow_prints_an_alert_within_seconds_of_the_registration_that_raises_it() -> anyhow::Result<()>
{
    let (target, _) = passport(3);
    let mine = register("alice", &target, "desk@police-fr.example", "FR-F")?;
    let follower = JsonLines::spawn(fedq("alice").args(["alerts", "--follow", "--json"]))?;
    // Give the stream time to open, then another agency registers.
    std::thread::sleep(Duration::from_millis(500));
    let theirs = register("erik", &target, "desk@police-nl.example", "NL-F")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let found = follower.first(deadline, |alert| alert["registration"] == mine["id"])?;
    let alert = found.context("no alert within 20 s")?;
    assert_eq!(alert["other_registration"], theirs["id"]);
    assert_eq!(alert["other"]["contact"], "desk@police-nl.example");
    Ok(())
}

#[test]
fn an_expired_or_cancelled_registration_is_matched_no_more_and_its_alerts_are_gone(
) -> anyhow::Result<()> {
    let fed = federation();
    runtime().block_on(async {
        let (target, _) = passport(4);
        let mut alice = Requester::connect(ClientConfig::load(client_toml("alice"))?).await?;
        let mut dora = Requester::connect(ClientConfig::load(client_toml("dora"))?).await?;
        let input = LookupInput {
            kind: IdentifierKind::Passport,
            value: target.clone(),
        };
        let options = |contact: &str, seconds: i64| DeconflictOptions {
            purpose: "deconfliction".to_owned(),
            case_reference: "EXP-1".to_owned(),
            legal_basis: None,
            contact: contact.to_owned(),
            until: chrono::Utc::now().timestamp() + seconds,
        };
        let short = alice
            .deconflict_register(&input, &options("a@fr.example", 3))
            .await?;
        let long = dora
            .deconflict_register(&input, &options("d@de.example", 3_600))
            .await?;
        assert_eq!(long.matches, 1);
        assert!(dora.alerts(0).await?.iter().any(|a| a
            .as_ref()
            .is_ok_and(|a| a.deconfliction().is_some_and(|d| d.registration == long.id))));
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Alice's registration ended: dora's alert about it went with it,
        // and a new registration does not meet it.
        assert!(!dora.alerts(0).await?.iter().any(|a| a
            .as_ref()
            .is_ok_and(|a| a.deconfliction().is_some_and(|d| d.registration == long.id))));
        assert!(!alice
            .deconflict_list()
            .await?
            .iter()
            .any(|r| r.id == short.id));
        let mut erik = Requester::connect(ClientConfig::load(client_toml("erik"))?).await?;
        let third = erik
            .deconflict_register(&input, &options("e@nl.example", 3_600))
            .await?;
        assert_eq!(third.matches, 1, "dora's only");

        // Cancelled: gone from the list, its alerts on both sides gone.
        dora.deconflict_cancel(&long.id).await?;
        assert!(!dora
            .deconflict_list()
            .await?
            .iter()
            .any(|r| r.id == long.id));
        assert!(!erik
            .alerts(0)
            .await?
            .iter()
            .any(|a| a.as_ref().is_ok_and(|a| a
                .deconfliction()
                .is_some_and(|d| d.registration == third.id))));
        // Only its owner cancels a registration.
        let refused = alice.deconflict_cancel(&third.id).await.unwrap_err();
        assert!(format!("{refused:#}").contains("NotFound"), "{refused:#}");
        let _ = fed;
        Ok(())
    })
}

#[test]
fn registrations_outside_policy_are_refused_with_a_reason_and_audited() -> anyhow::Result<()> {
    let fed = federation();
    runtime().block_on(async {
        let input = LookupInput {
            kind: IdentifierKind::Passport,
            value: passport(5).0,
        };
        let base = DeconflictOptions {
            purpose: "deconfliction".to_owned(),
            case_reference: "POL-1".to_owned(),
            legal_basis: None,
            contact: "desk@police-fr.example".to_owned(),
            until: chrono::Utc::now().timestamp() + 3_600,
        };
        // A researcher may not take part: every node refuses its partial
        // evaluation, so no pseudonym can be computed.
        let mut rosa =
            Requester::connect(ClientConfig::load(&fed.sandbox.output.researcher_client)?).await?;
        let refused = rosa.deconflict_register(&input, &base).await.unwrap_err();
        let text = format!("{refused:#}");
        assert!(
            text.contains("deconfliction needs 2 nodes, 0 answered"),
            "{text}"
        );
        assert!(text.contains("may not deconflict"), "{text}");
        // A purpose the nodes do not admit for deconfliction.
        let mut alice = Requester::connect(ClientConfig::load(client_toml("alice"))?).await?;
        let wrong_purpose = DeconflictOptions {
            purpose: "curiosity".to_owned(),
            ..base.clone()
        };
        let text = format!(
            "{:#}",
            alice
                .deconflict_register(&input, &wrong_purpose)
                .await
                .unwrap_err()
        );
        assert!(text.contains("purpose"), "{text}");
        for node in ["fr", "de", "nl"] {
            assert!(node_audit(node)?.iter().any(|r| r.action == "deconflict"
                && r.case_ref == "POL-1"
                && r.decision == Decision::Refused));
        }
        // Longer than the coordinator's maximum lifetime (90 days).
        let too_long = DeconflictOptions {
            until: chrono::Utc::now().timestamp() + 200 * 86_400,
            case_reference: "POL-2".to_owned(),
            ..base.clone()
        };
        let text = format!(
            "{:#}",
            alice
                .deconflict_register(&input, &too_long)
                .await
                .unwrap_err()
        );
        assert!(
            text.contains("InvalidArgument") && text.contains("at most 90 days"),
            "{text}"
        );
        assert!(coordinator_audit()?
            .iter()
            .any(|r| r.action == "deconflict-register"
                && r.case_ref == "POL-2"
                && r.decision == Decision::Refused));
        // The federation still serves a registration within policy.
        alice.deconflict_register(&input, &base).await?;
        Ok(())
    })
}
