//! Deconfliction in the demo: investigators of two agencies register the
//! same target (spelled differently) and are both told, each with the
//! other's contact; the coordinator only ever matched two pseudonyms.

use std::path::Path;

use anyhow::Context;
use fedq_client::{ClientConfig, DeconflictOptions, LookupInput, Requester};
use fedq_crypto::IdentifierKind;
use fedq_proto::federation::RequesterEntry;

/// The second agency of the demo, admitted by every node's policy.
pub(super) const CUSTOMS: &str = "customs-demo";

/// Admits [`CUSTOMS`] in a generated node's policy (before the node starts).
pub(super) fn admit_customs(node_toml: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(node_toml)?;
    let admitted = text.replace(
        "agencies = [\"demo-agency\"]",
        &format!("agencies = [\"demo-agency\", \"{CUSTOMS}\"]"),
    );
    anyhow::ensure!(
        admitted != text,
        "no agencies list in {}",
        node_toml.display()
    );
    std::fs::write(node_toml, admitted)?;
    Ok(())
}

/// Alice (demo-agency) and dora (customs) register one passport; both are told.
pub(super) async fn deconflict(alice: &mut Requester, dir: &Path) -> anyhow::Result<()> {
    println!("\ndeconfliction: alice (demo-agency) and dora ({CUSTOMS}) work the same passport");
    let entry = RequesterEntry {
        id: "dora".to_owned(),
        agency: CUSTOMS.to_owned(),
        role: fedq_proto::role::Role::Investigator,
        public_key: String::new(),
    };
    let client = tokio::task::block_in_place(|| fedq_client::init::add_requester(dir, &entry))?;
    let mut dora = Requester::connect(ClientConfig::load(&client)?).await?;
    let until = chrono::Utc::now().timestamp() + 30 * 86_400;
    let options = |contact: &str, case: &str| DeconflictOptions {
        purpose: "deconfliction".to_owned(),
        case_reference: case.to_owned(),
        legal_basis: None,
        contact: contact.to_owned(),
        until,
    };
    let mine = alice
        .deconflict_register(
            &LookupInput {
                kind: IdentifierKind::Passport,
                value: "FR:P4521987".to_owned(),
            },
            &options("desk@demo-agency.example", "DA-2026-31"),
        )
        .await?;
    println!(
        "  alice registers passport FR:P4521987 (registration {}): {} registration of another agency so far",
        mine.id, mine.matches
    );
    let theirs = dora
        .deconflict_register(
            &LookupInput {
                kind: IdentifierKind::Passport,
                value: "fra p452-1987".to_owned(),
            },
            &options("duty@customs.example", "CU-88"),
        )
        .await?;
    println!(
        "  dora registers \"fra p452-1987\" (registration {}): {} registration of another agency matches",
        theirs.id, theirs.matches
    );
    for (who, requester, registration) in [
        ("alice", &mut *alice, &mine.id),
        ("dora", &mut dora, &theirs.id),
    ] {
        let alert = requester
            .alerts(0)
            .await?
            .into_iter()
            .filter_map(Result::ok)
            .filter_map(|a| a.deconfliction().cloned())
            .find(|a| &a.registration == registration)
            .with_context(|| format!("{who} was not alerted"))?;
        let contact = format!(
            "{} (case {})",
            alert.other.contact, alert.other.case_reference
        );
        println!(
            "  {who}'s alert {}: {} works this target too, contact {contact}",
            alert.id, alert.other_agency
        );
    }
    println!(
        "  what each party learned: the coordinator matched two pseudonyms that only 2 of the 3\n\
         \x20 nodes together can compute (it holds no share) and kept the contacts sealed under a key\n\
         \x20 only holders of the passport derive; each node evaluated a blinded element under its\n\
         \x20 share (audited, counted against the hourly limit); alice and dora learned each other's\n\
         \x20 agency, contact and case, and nobody else learned anything"
    );
    Ok(())
}
