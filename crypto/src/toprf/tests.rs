//! Tests of the threshold OPRF: agreement with the unshared VOPRF, any `t`
//! nodes agreeing, refusals of short, forged and malformed inputs, texts and
//! sealing.

use voprf::{Group, VoprfServer};

use super::secret::MIN_SEALED_BYTES;
use super::shamir::lagrange_at;
use super::*;
use crate::identifier::{normalise, IdentifierKind, NormalForm};
use crate::oprf::{oprf_input, OprfError, Scalar, Suite, MAX_BATCH};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn identifiers() -> Result<Vec<(IdentifierKind, NormalForm)>, Box<dyn std::error::Error>> {
    Ok(vec![
        (
            IdentifierKind::Phone,
            normalise(IdentifierKind::Phone, "+33 6 12 34 56 78")?,
        ),
        (
            IdentifierKind::Email,
            normalise(IdentifierKind::Email, "Alice.Example@Example.org")?,
        ),
        (
            IdentifierKind::Iban,
            normalise(IdentifierKind::Iban, "DE89 3704 0044 0532 0130 00")?,
        ),
        // Same normal form, other kind: a different input.
        (
            IdentifierKind::NationalId,
            normalise(IdentifierKind::Phone, "+33 6 12 34 56 78")?,
        ),
    ])
}

fn refs(items: &[(IdentifierKind, NormalForm)]) -> Vec<(IdentifierKind, &NormalForm)> {
    items.iter().map(|(kind, normal)| (*kind, normal)).collect()
}

/// A whole request: blinds for `nodes`' indices, lets each node answer and
/// accepts every answer, then finishes.
fn round_trip(
    public: &ThresholdPublicKey,
    nodes: &[&KeyShare],
    items: &[(IdentifierKind, &NormalForm)],
) -> Result<Vec<DeconflictionSecret>, ToprfError> {
    let indices: Vec<u16> = nodes.iter().map(|share| share.index()).collect();
    let (mut client, wire) = ThresholdClient::blind(items, &indices)?;
    for (share, blinded) in nodes.iter().zip(&wire) {
        let answer = evaluate_partial(share, blinded)?;
        client.accept(share.public(), &answer.elements, &answer.proof)?;
    }
    client.finish(public)
}

/// The unshared key `k`, rebuilt from the given shares by Lagrange at 0.
fn reconstruct(shares: &[&KeyShare]) -> Scalar {
    let indices: Vec<u16> = shares.iter().map(|share| share.index()).collect();
    lagrange_at(0, &indices)
        .iter()
        .zip(shares)
        .map(|(lambda, share)| lambda * share.secret_scalar())
        .sum()
}

/// What the unshared VOPRF gives for each item under `key`.
fn unshared_secrets(
    key: &Scalar,
    items: &[(IdentifierKind, &NormalForm)],
) -> Result<Vec<DeconflictionSecret>, Box<dyn std::error::Error>> {
    let server = VoprfServer::<Suite>::new_with_key(&<Suite as Group>::serialize_scalar(*key))
        .map_err(|e| format!("{e:?}"))?;
    items
        .iter()
        .map(|(kind, normal)| {
            let output = server
                .evaluate(&oprf_input(*kind, normal))
                .map_err(|e| format!("{e:?}"))?;
            Ok(DeconflictionSecret::from_output(&output))
        })
        .collect()
}

fn assert_same_secrets(left: &[DeconflictionSecret], right: &[DeconflictionSecret]) {
    assert_eq!(left.len(), right.len());
    for (a, b) in left.iter().zip(right) {
        assert_eq!(a.pseudonym, b.pseudonym);
        assert_eq!(*a.seal_key.to_bytes(), *b.seal_key.to_bytes());
    }
}

/// Deals `t`-of-`n`, runs the first `t` nodes and compares with the VOPRF of
/// the key rebuilt from the last `t` shares.
fn check_against_unshared(threshold: u16, nodes: u16) -> TestResult {
    let (public, shares) = deal(threshold, nodes)?;
    assert_eq!(shares.len(), usize::from(nodes));
    let t = usize::from(threshold);
    let key = reconstruct(&shares[shares.len() - t..].iter().collect::<Vec<_>>());
    assert_eq!(*public.point(), crate::oprf::Point::mul_base(&key));
    let items = identifiers()?;
    let items = refs(&items);
    let secrets = round_trip(&public, &shares[..t].iter().collect::<Vec<_>>(), &items)?;
    assert_same_secrets(&secrets, &unshared_secrets(&key, &items)?);
    // Distinct items, distinct pseudonyms (the kind is part of the input).
    for (i, a) in secrets.iter().enumerate() {
        for b in &secrets[i + 1..] {
            assert_ne!(a.pseudonym, b.pseudonym);
        }
    }
    Ok(())
}

#[test]
fn two_of_three_equals_the_unshared_voprf() -> TestResult {
    check_against_unshared(2, 3)
}

#[test]
fn three_of_five_equals_the_unshared_voprf() -> TestResult {
    check_against_unshared(3, 5)
}

#[test]
fn one_of_one_equals_the_unshared_voprf() -> TestResult {
    check_against_unshared(1, 1)
}

#[test]
fn any_two_threshold_subsets_agree() -> TestResult {
    let (public, shares) = deal(3, 5)?;
    let items = identifiers()?;
    let items = refs(&items);
    let first = round_trip(&public, &[&shares[0], &shares[1], &shares[2]], &items)?;
    let second = round_trip(&public, &[&shares[4], &shares[1], &shares[3]], &items)?;
    assert_same_secrets(&first, &second);
    // More answers than t: finish uses the first t accepted.
    let all: Vec<&KeyShare> = shares.iter().rev().collect();
    assert_same_secrets(&first, &round_trip(&public, &all, &items)?);
    // Another federation's key gives other pseudonyms.
    let (other_public, other_shares) = deal(3, 5)?;
    let other = round_trip(
        &other_public,
        &[&other_shares[0], &other_shares[1], &other_shares[2]],
        &items,
    )?;
    assert_ne!(first[0].pseudonym, other[0].pseudonym);
    Ok(())
}

#[test]
fn fewer_than_threshold_partials_are_refused() -> TestResult {
    let (public, shares) = deal(3, 5)?;
    let items = identifiers()?;
    assert_eq!(
        round_trip(&public, &[&shares[0], &shares[3]], &refs(&items)).err(),
        Some(ToprfError::NotEnoughShares { got: 2, needed: 3 })
    );
    Ok(())
}

#[test]
fn one_node_cannot_compute_the_pseudonym() -> TestResult {
    let (public, shares) = deal(2, 3)?;
    let items = identifiers()?;
    let items = refs(&items);
    let secrets = round_trip(&public, &[&shares[0], &shares[2]], &items)?;
    for share in &shares {
        // The node evaluating on its own, treating k_i as the whole key.
        let alone = unshared_secrets(&share.secret_scalar(), &items)?;
        for (own, real) in alone.iter().zip(&secrets) {
            assert_ne!(own.pseudonym, real.pseudonym);
            assert_ne!(*own.seal_key.to_bytes(), *real.seal_key.to_bytes());
        }
    }
    // With t = 1 the single share is the key: the check above can fail.
    let (public, shares) = deal(1, 1)?;
    let secrets = round_trip(&public, &[&shares[0]], &items)?;
    assert_same_secrets(
        &secrets,
        &unshared_secrets(&shares[0].secret_scalar(), &items)?,
    );
    Ok(())
}

#[test]
fn forged_answers_are_refused_by_accept() -> TestResult {
    let (_, shares) = deal(2, 3)?;
    let (_, strangers) = deal(2, 3)?;
    let items = identifiers()?;
    let (mut client, wire) = ThresholdClient::blind(&refs(&items), &[1, 2])?;
    let proof_error = Err(ToprfError::Oprf(OprfError::ProofVerification));

    // A node answering under another key than its public share.
    let answer = evaluate_partial(&strangers[0], &wire[0])?;
    assert_eq!(
        client.accept(shares[0].public(), &answer.elements, &answer.proof),
        proof_error
    );
    let answer = evaluate_partial(&shares[1], &wire[0])?;
    assert_eq!(
        client.accept(shares[0].public(), &answer.elements, &answer.proof),
        proof_error
    );

    let answer = evaluate_partial(&shares[0], &wire[0])?;
    // A tampered element (still a valid point), a tampered proof.
    let mut swapped = answer.elements.clone();
    swapped.swap(0, 1);
    assert_eq!(
        client.accept(shares[0].public(), &swapped, &answer.proof),
        proof_error
    );
    let mut proof = answer.proof;
    proof[0] ^= 1;
    assert_eq!(
        client.accept(shares[0].public(), &answer.elements, &proof),
        proof_error
    );
    // An answer to the other node's elements.
    let other = evaluate_partial(&shares[0], &wire[1])?;
    assert_eq!(
        client.accept(shares[0].public(), &other.elements, &other.proof),
        proof_error
    );
    // A wrong count.
    assert_eq!(
        client.accept(shares[0].public(), &answer.elements[1..], &answer.proof),
        Err(ToprfError::Oprf(OprfError::CountMismatch {
            expected: items.len(),
            got: items.len() - 1
        }))
    );
    assert_eq!(client.accepted(), 0);
    // The honest answer still goes through, once.
    client.accept(shares[0].public(), &answer.elements, &answer.proof)?;
    assert_eq!(client.accepted(), 1);
    assert_eq!(
        client.accept(shares[0].public(), &answer.elements, &answer.proof),
        Err(ToprfError::DuplicateShare(1))
    );
    // An index the request was not blinded for.
    let answer = evaluate_partial(&shares[2], &wire[1])?;
    assert_eq!(
        client.accept(shares[2].public(), &answer.elements, &answer.proof),
        Err(ToprfError::UnknownShare(3))
    );
    assert_eq!(client.accepted(), 1);
    Ok(())
}

#[test]
fn finish_refuses_shares_of_another_key() -> TestResult {
    // Node 2 of another federation proves correctly against its own share,
    // which a client that skipped `check_public_shares` might hold.
    let (public, shares) = deal(2, 3)?;
    let (_, strangers) = deal(2, 3)?;
    let items = identifiers()?;
    let (mut client, wire) = ThresholdClient::blind(&refs(&items), &[1, 2])?;
    for (share, blinded) in [&shares[0], &strangers[1]].into_iter().zip(&wire) {
        let answer = evaluate_partial(share, blinded)?;
        client.accept(share.public(), &answer.elements, &answer.proof)?;
    }
    assert_eq!(client.finish(&public).err(), Some(ToprfError::KeyMismatch));
    Ok(())
}

#[test]
fn blinds_differ_per_node_and_per_request() -> TestResult {
    let items = identifiers()?;
    let items = refs(&items);
    let (_, first) = ThresholdClient::blind(&items, &[1, 2, 3])?;
    let (_, again) = ThresholdClient::blind(&items, &[1, 2, 3])?;
    assert_eq!(first.len(), 3);
    for node in &first {
        assert_eq!(node.len(), items.len());
    }
    for item in 0..items.len() {
        assert_ne!(first[0][item], first[1][item]);
        assert_ne!(first[1][item], first[2][item]);
        assert_ne!(first[0][item], first[2][item]);
        assert_ne!(first[0][item], again[0][item]);
    }
    Ok(())
}

#[test]
fn blind_refuses_bad_indices_and_batches() -> TestResult {
    let items = identifiers()?;
    let items = refs(&items);
    assert_eq!(
        ThresholdClient::blind(&items, &[1, 0]).err(),
        Some(ToprfError::ShareIndex(0))
    );
    assert_eq!(
        ThresholdClient::blind(&items, &[1, 256]).err(),
        Some(ToprfError::ShareIndex(256))
    );
    assert_eq!(
        ThresholdClient::blind(&items, &[2, 1, 2]).err(),
        Some(ToprfError::DuplicateShare(2))
    );
    assert_eq!(
        ThresholdClient::blind(&items, &[]).err(),
        Some(ToprfError::NotEnoughShares { got: 0, needed: 1 })
    );
    assert_eq!(
        ThresholdClient::blind(&[], &[1]).err(),
        Some(ToprfError::Oprf(OprfError::EmptyBatch))
    );
    let many = vec![items[0]; MAX_BATCH + 1];
    assert_eq!(
        ThresholdClient::blind(&many, &[1]).err(),
        Some(ToprfError::Oprf(OprfError::BatchTooLarge {
            got: MAX_BATCH + 1,
            max: MAX_BATCH
        }))
    );
    Ok(())
}

#[test]
fn evaluate_partial_refuses_malformed_elements() -> TestResult {
    let (_, shares) = deal(2, 3)?;
    let none: [Vec<u8>; 0] = [];
    assert_eq!(
        evaluate_partial(&shares[0], &none),
        Err(OprfError::EmptyBatch)
    );
    assert_eq!(
        evaluate_partial(&shares[0], &[vec![0u8; 31]]),
        Err(OprfError::ElementLength { index: 0, len: 31 })
    );
    assert_eq!(
        evaluate_partial(&shares[0], &[[0u8; 32]]),
        Err(OprfError::InvalidElement { index: 0 })
    );
    Ok(())
}

#[test]
fn check_public_shares_accepts_the_dealt_shares_only() -> TestResult {
    let (public, shares) = deal(3, 5)?;
    let publics: Vec<SharePublicKey> = shares.iter().map(|share| share.public().clone()).collect();
    check_public_shares(&public, &publics)?;
    // Exactly t, in any order.
    check_public_shares(
        &public,
        &[publics[4].clone(), publics[0].clone(), publics[2].clone()],
    )?;

    let (other_public, others) = deal(3, 5)?;
    // A share replaced beyond the first t, then among them.
    let mut replaced = publics.clone();
    replaced[3] = others[3].public().clone();
    assert_eq!(
        check_public_shares(&public, &replaced),
        Err(ToprfError::InconsistentShares(4))
    );
    let mut replaced = publics.clone();
    replaced[1] = others[1].public().clone();
    assert_eq!(
        check_public_shares(&public, &replaced),
        Err(ToprfError::KeyMismatch)
    );
    // Another federation's K.
    assert_eq!(
        check_public_shares(&other_public, &publics),
        Err(ToprfError::KeyMismatch)
    );
    // A duplicate, and too few.
    let mut duplicated = publics.clone();
    duplicated.push(publics[2].clone());
    assert_eq!(
        check_public_shares(&public, &duplicated),
        Err(ToprfError::DuplicateShare(3))
    );
    assert_eq!(
        check_public_shares(&public, &publics[..2]),
        Err(ToprfError::NotEnoughShares { got: 2, needed: 3 })
    );
    Ok(())
}

#[test]
fn deal_refuses_out_of_range_thresholds() -> TestResult {
    for (threshold, nodes) in [(0, 3), (4, 3), (0, 0), (2, 256), (256, 256)] {
        assert_eq!(
            deal(threshold, nodes).err(),
            Some(ToprfError::ThresholdRange { threshold, nodes })
        );
    }
    let (public, shares) = deal(2, MAX_NODES)?;
    assert_eq!(public.threshold(), 2);
    let indices: Vec<u16> = shares.iter().map(KeyShare::index).collect();
    assert_eq!(indices, (1..=MAX_NODES).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn key_texts_round_trip() -> TestResult {
    let (public, shares) = deal(2, 3)?;
    let text = public.to_text();
    assert!(text.starts_with("2:") && text.len() == 66, "{text}");
    assert_eq!(ThresholdPublicKey::from_text(&text)?, public);
    assert_eq!(
        ThresholdPublicKey::from_text(&format!(" {text}\n"))?,
        public
    );

    let share_public = shares[2].public();
    let text = share_public.to_text();
    assert!(text.starts_with("3:") && text.len() == 66, "{text}");
    let parsed = SharePublicKey::from_text(&text)?;
    assert_eq!(&parsed, share_public);
    assert_eq!(parsed.index(), 3);
    assert_eq!(hex::encode(parsed.to_bytes()), text[2..]);

    let text = shares[1].to_text();
    assert!(text.starts_with(SHARE_FILE_PREFIX));
    let parsed = KeyShare::from_text(&format!("{}\n", *text))?;
    assert_eq!(parsed.index(), 2);
    assert_eq!(parsed.public(), shares[1].public());
    assert_eq!(parsed.secret_scalar(), shares[1].secret_scalar());
    Ok(())
}

#[test]
fn malformed_key_texts_are_refused() -> TestResult {
    let (public, shares) = deal(2, 3)?;
    let key_hex = &public.to_text()[2..];
    let share_text = shares[0].to_text();
    let secret_hex = &share_text[SHARE_FILE_PREFIX.len() + 2..];
    let zero = "00".repeat(32);
    let non_canonical = "ff".repeat(32);
    for bad in [
        String::new(),
        key_hex.to_string(),
        format!("0:{key_hex}"),
        format!("256:{key_hex}"),
        format!("02:{key_hex}"),
        format!("+2:{key_hex}"),
        format!("2:{}", &key_hex[2..]),
        format!("2:{key_hex}00"),
        format!("2:{zero}"),
        format!("2:{non_canonical}"),
        format!("2: {key_hex}"),
    ] {
        assert_eq!(
            ThresholdPublicKey::from_text(&bad),
            Err(ToprfError::PublicKeyFormat),
            "{bad}"
        );
        assert_eq!(
            SharePublicKey::from_text(&bad),
            Err(ToprfError::PublicShareFormat),
            "{bad}"
        );
    }
    for bad in [
        String::new(),
        secret_hex.to_string(),
        format!("{SHARE_FILE_PREFIX}{secret_hex}"),
        format!("{SHARE_FILE_PREFIX}0 {secret_hex}"),
        format!("{SHARE_FILE_PREFIX}256 {secret_hex}"),
        format!("{SHARE_FILE_PREFIX}1 {}", &secret_hex[2..]),
        format!("{SHARE_FILE_PREFIX}1 {zero}"),
        format!("{SHARE_FILE_PREFIX}1 {non_canonical}"),
        format!("fedq-oprf-key v1 ristretto255-sha512 voprf {secret_hex}"),
    ] {
        assert_eq!(
            KeyShare::from_text(&bad).err(),
            Some(ToprfError::ShareFormat),
            "{bad}"
        );
    }
    Ok(())
}

#[test]
fn debug_never_shows_secrets() -> TestResult {
    let (public, shares) = deal(1, 2)?;
    let share_text = shares[0].to_text();
    let secret_hex = &share_text[SHARE_FILE_PREFIX.len() + 2..];
    assert_eq!(format!("{:?}", shares[0]), "KeyShare(1)");
    let items = identifiers()?;
    let items = refs(&items);
    let (client, _) = ThresholdClient::blind(&items, &[1, 2])?;
    assert_eq!(
        format!("{client:?}"),
        "ThresholdClient(4 items, 2 nodes, 0 accepted)"
    );
    let secrets = round_trip(&public, &[&shares[0]], &items)?;
    let key_hex = hex::encode(*secrets[0].seal_key.to_bytes());
    let shown = format!("{:?}", secrets[0]);
    assert!(
        shown.contains("pseudonym") && !shown.contains(&key_hex),
        "{shown}"
    );
    assert!(!format!("{:?}", secrets[0].seal_key).contains(&key_hex));
    assert!(!format!("{public:?} {:?}", shares[0].public()).contains(secret_hex));
    Ok(())
}

#[test]
fn pseudonym_bytes_and_hex_round_trip() -> TestResult {
    let pseudonym = Pseudonym::from_bytes([7u8; 32]);
    assert_eq!(Pseudonym::from_slice(&pseudonym.to_bytes())?, pseudonym);
    assert_eq!(Pseudonym::from_hex(&pseudonym.to_hex())?, pseudonym);
    assert_eq!(
        Pseudonym::from_slice(&[7u8; 31]),
        Err(ToprfError::PseudonymFormat)
    );
    assert_eq!(
        Pseudonym::from_slice(&[7u8; 33]),
        Err(ToprfError::PseudonymFormat)
    );
    assert_eq!(Pseudonym::from_hex("07"), Err(ToprfError::PseudonymFormat));
    Ok(())
}

#[test]
fn seal_and_open_round_trip() -> TestResult {
    let key = SealKey::from_bytes([9u8; 32]);
    for plaintext in [&b""[..], b"contact: desk 4, +33 1 23 45 67 89"] {
        let sealed = key.seal(b"ctx", plaintext);
        assert_eq!(sealed.len(), MIN_SEALED_BYTES + plaintext.len());
        assert_eq!(key.open(b"ctx", &sealed)?, plaintext);
        // Fresh nonce each time.
        assert_ne!(key.seal(b"ctx", plaintext), sealed);
    }
    let largest = vec![1u8; MAX_SEALED_BYTES - MIN_SEALED_BYTES];
    assert_eq!(key.open(b"ctx", &key.seal(b"ctx", &largest))?, largest);
    assert_eq!(MIN_SEALED_BYTES, 28);
    Ok(())
}

#[test]
fn open_refuses_wrong_keys_tampering_and_bad_lengths() -> TestResult {
    let key = SealKey::derive("fedq test wrap key", b"signing key file bytes");
    let sealed = key.seal(b"ctx", b"contact");
    // Another label or other material gives another key.
    for other in [
        SealKey::derive("fedq test wrap key 2", b"signing key file bytes"),
        SealKey::derive("fedq test wrap key", b"signing key file bytez"),
        SealKey::from_bytes([0u8; 32]),
    ] {
        assert_eq!(other.open(b"ctx", &sealed), Err(ToprfError::Open));
    }
    // The same key, but presented as being about something else.
    assert_eq!(key.open(b"ctx2", &sealed), Err(ToprfError::Open));
    assert_eq!(key.open(b"", &sealed), Err(ToprfError::Open));
    for byte in 0..sealed.len() {
        let mut flipped = sealed.clone();
        flipped[byte] ^= 0x01;
        assert_eq!(
            key.open(b"ctx", &flipped),
            Err(ToprfError::Open),
            "byte {byte}"
        );
    }
    assert_eq!(
        key.open(b"ctx", &sealed[..sealed.len() - 1]),
        Err(ToprfError::Open)
    );
    let mut extended = sealed.clone();
    extended.push(0);
    assert_eq!(key.open(b"ctx", &extended), Err(ToprfError::Open));
    assert_eq!(
        key.open(b"ctx", &sealed[..MIN_SEALED_BYTES - 1]),
        Err(ToprfError::SealedLength(MIN_SEALED_BYTES - 1))
    );
    assert_eq!(key.open(b"ctx", &[]), Err(ToprfError::SealedLength(0)));
    let too_long = key.seal(b"ctx", &vec![0u8; MAX_SEALED_BYTES]);
    assert_eq!(
        key.open(b"ctx", &too_long),
        Err(ToprfError::SealedLength(too_long.len()))
    );
    assert_eq!(
        key.open(b"ctx", &vec![0u8; MAX_SEALED_BYTES + 1]),
        Err(ToprfError::SealedLength(MAX_SEALED_BYTES + 1))
    );
    Ok(())
}
