//! Tests of the OPRF: RFC 9497 vectors, client/node agreement, refusals.

use voprf::VoprfServer;

use super::key::secret_bytes;
use super::server::{direct_outputs, IMPORT_CHUNK};
use super::*;
use crate::fingerprint::FingerprintParams;
use crate::identifier::normalise;

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
    ])
}

fn refs(items: &[(IdentifierKind, NormalForm)]) -> Vec<(IdentifierKind, &NormalForm)> {
    items.iter().map(|(kind, normal)| (*kind, normal)).collect()
}

/// Runs a whole blinded round trip against `node`, checking against `public`.
fn blinded_round_trip(
    node: &NodeOprfKey,
    public: &NodeOprfPublicKey,
    items: &[(IdentifierKind, &NormalForm)],
) -> Result<Vec<Fingerprint>, OprfError> {
    let (state, blinded) = BlindedItems::blind(items)?;
    let answer = evaluate_blinded(node, &blinded)?;
    state.finalize(public, &answer.elements, &answer.proof)
}

fn hex_bytes<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).expect("test vector hex");
    out
}

#[test]
fn direct_evaluation_matches_rfc_9497_vectors() -> TestResult {
    // RFC 9497 A.1.2 (VOPRF mode, ristretto255-SHA512).
    let seed = [0xa3u8; 32];
    let server =
        VoprfServer::<Suite>::new_from_seed(&seed, b"test key").map_err(|e| format!("{e:?}"))?;
    let key = NodeOprfKey::from_server(server);
    assert_eq!(
        *secret_bytes(&key.server),
        hex_bytes::<32>("e6f73f344b79b379f1a0dd37e07ff62e38d9f71345ce62ae3a9bc60b04ccd909")
    );
    assert_eq!(
        key.public_key().to_text(),
        "c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e"
    );
    let outputs = direct_outputs(&key, &[vec![0x00], vec![0x5a; 17]]);
    assert_eq!(
        outputs[0],
        hex_bytes::<64>(
            "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7d\
             a4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c"
        )
    );
    assert_eq!(
        outputs[1],
        hex_bytes::<64>(
            "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60\
             356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6"
        )
    );
    Ok(())
}

#[test]
fn client_output_equals_the_nodes_direct_evaluation() -> TestResult {
    let key = NodeOprfKey::generate();
    let items = identifiers()?;
    let items = refs(&items);
    let from_client = blinded_round_trip(&key, key.public_key(), &items)?;
    let direct: Vec<Fingerprint> = items
        .iter()
        .map(|(kind, normal)| node_fingerprint(&key, *kind, normal))
        .collect();
    assert_eq!(from_client, direct);
    assert_eq!(node_fingerprints(&key, &items), direct);
    // And both are the `voprf` crate's own server-side evaluation.
    for ((kind, normal), fingerprint) in items.iter().zip(&direct) {
        let output = key
            .server
            .evaluate(&oprf_input(*kind, normal))
            .map_err(|e| format!("{e:?}"))?;
        assert_eq!(*fingerprint, fingerprint_of_output(&output));
    }
    // Bucket and tag come from the shared fingerprint code path.
    let params = FingerprintParams::new(12, 28)?;
    assert_eq!(from_client[0].bucket(params), direct[0].bucket(params));
    assert_eq!(from_client[0].tag(params), direct[0].tag(params));
    Ok(())
}

#[test]
fn batch_import_keeps_order_across_chunks() -> TestResult {
    let key = NodeOprfKey::generate();
    let normals = (0..(IMPORT_CHUNK * 2 + 3))
        .map(|i| normalise(IdentifierKind::Phone, &format!("+3361234{i:04}")))
        .collect::<Result<Vec<_>, _>>()?;
    let items: Vec<_> = normals
        .iter()
        .map(|normal| (IdentifierKind::Phone, normal))
        .collect();
    let batch = node_fingerprints(&key, &items);
    assert_eq!(batch.len(), items.len());
    for (index, (kind, normal)) in items.iter().enumerate().step_by(37) {
        assert_eq!(batch[index], node_fingerprint(&key, *kind, normal));
    }
    Ok(())
}

#[test]
fn two_node_keys_give_different_fingerprints() -> TestResult {
    let (first, second) = (NodeOprfKey::generate(), NodeOprfKey::generate());
    assert_ne!(first.key_id(), second.key_id());
    for (kind, normal) in identifiers()? {
        assert_ne!(
            node_fingerprint(&first, kind, &normal),
            node_fingerprint(&second, kind, &normal)
        );
    }
    // The kind is part of the input.
    let normal = normalise(IdentifierKind::Phone, "+33612345678")?;
    assert_ne!(
        node_fingerprint(&first, IdentifierKind::Phone, &normal),
        node_fingerprint(&first, IdentifierKind::NationalId, &normal)
    );
    Ok(())
}

#[test]
fn blinding_is_randomised() -> TestResult {
    let items = identifiers()?;
    let items = refs(&items);
    let (_, first) = BlindedItems::blind(&items)?;
    let (_, second) = BlindedItems::blind(&items)?;
    assert!(first.iter().zip(&second).all(|(a, b)| a != b));
    Ok(())
}

#[test]
fn malformed_blinded_elements_are_refused() -> TestResult {
    let key = NodeOprfKey::generate();
    let items = identifiers()?;
    let (_, good) = BlindedItems::blind(&refs(&items))?;
    let good: Vec<Vec<u8>> = good.iter().map(|e| e.to_vec()).collect();

    let mut short = good.clone();
    short[1].pop();
    assert_eq!(
        evaluate_blinded(&key, &short),
        Err(OprfError::ElementLength { index: 1, len: 31 })
    );
    let mut long = good.clone();
    long[2].push(0);
    assert_eq!(
        evaluate_blinded(&key, &long),
        Err(OprfError::ElementLength { index: 2, len: 33 })
    );
    // The identity (all zeros), a non-canonical encoding, a non-point.
    for bad in [[0u8; 32], [0xffu8; 32], {
        let mut b = [0u8; 32];
        b[0] = 1;
        b
    }] {
        let mut batch = good.clone();
        batch[0] = bad.to_vec();
        assert_eq!(
            evaluate_blinded(&key, &batch),
            Err(OprfError::InvalidElement { index: 0 })
        );
    }
    let none: [Vec<u8>; 0] = [];
    assert_eq!(evaluate_blinded(&key, &none), Err(OprfError::EmptyBatch));
    let too_many = vec![good[0].clone(); MAX_BATCH + 1];
    assert_eq!(
        evaluate_blinded(&key, &too_many),
        Err(OprfError::BatchTooLarge {
            got: MAX_BATCH + 1,
            max: MAX_BATCH
        })
    );
    assert_eq!(
        BlindedItems::blind(&[]).map(|_| ()),
        Err(OprfError::EmptyBatch)
    );
    Ok(())
}

#[test]
fn wrong_answers_are_refused() -> TestResult {
    let key = NodeOprfKey::generate();
    let items = identifiers()?;
    let items = refs(&items);

    // One element too few, one too many.
    let (state, blinded) = BlindedItems::blind(&items)?;
    let answer = evaluate_blinded(&key, &blinded)?;
    assert_eq!(
        state.finalize(key.public_key(), &answer.elements[..2], &answer.proof),
        Err(OprfError::CountMismatch {
            expected: 3,
            got: 2
        })
    );
    let (state, blinded) = BlindedItems::blind(&items)?;
    let answer = evaluate_blinded(&key, &blinded)?;
    let mut extra = answer.elements.clone();
    extra.push(answer.elements[0]);
    assert_eq!(
        state.finalize(key.public_key(), &extra, &answer.proof),
        Err(OprfError::CountMismatch {
            expected: 3,
            got: 4
        })
    );

    // Elements out of order, a proof cut short, another node's key.
    let (state, blinded) = BlindedItems::blind(&items)?;
    let answer = evaluate_blinded(&key, &blinded)?;
    let mut swapped = answer.elements.clone();
    swapped.swap(0, 1);
    assert_eq!(
        state.finalize(key.public_key(), &swapped, &answer.proof),
        Err(OprfError::ProofVerification)
    );
    let (state, blinded) = BlindedItems::blind(&items)?;
    let answer = evaluate_blinded(&key, &blinded)?;
    assert_eq!(
        state.finalize(key.public_key(), &answer.elements, &answer.proof[..63]),
        Err(OprfError::ProofFormat)
    );
    let other = NodeOprfKey::generate();
    let (state, blinded) = BlindedItems::blind(&items)?;
    let answer = evaluate_blinded(&other, &blinded)?;
    assert_eq!(
        state.finalize(key.public_key(), &answer.elements, &answer.proof),
        Err(OprfError::ProofVerification)
    );
    let (state, blinded) = BlindedItems::blind(&items)?;
    let answer = evaluate_blinded(&key, &blinded)?;
    let mut bad = answer.elements.clone();
    bad[2] = [0u8; 32];
    assert_eq!(
        state.finalize(key.public_key(), &bad, &answer.proof),
        Err(OprfError::InvalidElement { index: 2 })
    );
    Ok(())
}

#[test]
fn key_file_text_round_trips_and_is_checked() -> TestResult {
    let key = NodeOprfKey::generate();
    let text = key.to_text();
    assert!(text.starts_with(KEY_FILE_PREFIX));
    let back = NodeOprfKey::from_text(&format!("{}\n", text.as_str()))?;
    assert_eq!(back.public_key(), key.public_key());
    assert_eq!(back.key_id(), key.key_id());
    let normal = normalise(IdentifierKind::Email, "bob@example.org")?;
    assert_eq!(
        node_fingerprint(&back, IdentifierKind::Email, &normal),
        node_fingerprint(&key, IdentifierKind::Email, &normal)
    );

    let secret_hex = &text[KEY_FILE_PREFIX.len()..];
    assert!(!format!("{key:?}").contains(secret_hex));
    assert_eq!(format!("{key:?}"), format!("NodeOprfKey({})", key.key_id()));
    for bad in [
        secret_hex.to_owned(),
        format!("{KEY_FILE_PREFIX}{}", &secret_hex[..62]),
        format!("{KEY_FILE_PREFIX}{}", "0".repeat(64)),
        format!("{KEY_FILE_PREFIX}{}", "f".repeat(64)),
        format!("{KEY_FILE_PREFIX}{}", "zz".repeat(32)),
    ] {
        assert_eq!(
            NodeOprfKey::from_text(&bad).map(|_| ()),
            Err(OprfError::KeyFormat)
        );
    }

    let public = key.public_key();
    assert_eq!(&NodeOprfPublicKey::from_text(&public.to_text())?, public);
    assert_eq!(&NodeOprfPublicKey::from_bytes(&public.to_bytes())?, public);
    assert_eq!(
        NodeOprfPublicKey::from_text(&"0".repeat(64)),
        Err(OprfError::PublicKeyFormat)
    );
    let id = key.key_id();
    assert_eq!(id.to_string().len(), 16);
    assert_eq!(id.to_string().parse::<OprfKeyId>()?, id);
    Ok(())
}

#[test]
fn counts_are_checked_before_any_element() -> TestResult {
    let key = NodeOprfKey::generate();
    // Elements that are not even of the right length: the count alone refuses.
    let too_many = vec![Vec::<u8>::new(); MAX_BATCH + 1];
    assert_eq!(
        evaluate_blinded(&key, &too_many),
        Err(OprfError::BatchTooLarge {
            got: MAX_BATCH + 1,
            max: MAX_BATCH
        })
    );
    let items = identifiers()?;
    let (state, _) = BlindedItems::blind(&refs(&items))?;
    let flood = vec![Vec::<u8>::new(); 100_000];
    assert_eq!(
        state.finalize(key.public_key(), &flood, &[]),
        Err(OprfError::CountMismatch {
            expected: 3,
            got: 100_000
        })
    );
    Ok(())
}

#[test]
fn key_texts_of_any_shape_are_refused_without_panicking() {
    let long = "ab".repeat(10_000);
    let prefixed = format!("{KEY_FILE_PREFIX}é{}", "0".repeat(62));
    for text in [
        "",
        " ",
        "é",
        "0",
        "00000000000000é",
        "0".repeat(63).as_str(),
        long.as_str(),
        KEY_FILE_PREFIX,
        prefixed.as_str(),
    ] {
        assert_eq!(
            NodeOprfKey::from_text(text).map(|_| ()),
            Err(OprfError::KeyFormat)
        );
        assert_eq!(
            NodeOprfPublicKey::from_text(text),
            Err(OprfError::PublicKeyFormat)
        );
        assert_eq!(text.parse::<OprfKeyId>(), Err(OprfError::KeyIdFormat));
    }
    for bytes in [&[][..], &[1u8; 31][..], &[1u8; 33][..], &[0u8; 32][..]] {
        assert_eq!(
            NodeOprfPublicKey::from_bytes(bytes),
            Err(OprfError::PublicKeyFormat)
        );
    }
}

#[test]
fn an_over_long_stored_normal_form_does_not_panic_the_import() {
    // Only `normalise` output is meant to be stored, but the store is a file an
    // operator can edit; RFC 9497 cannot length-prefix this input.
    let key = NodeOprfKey::generate();
    let stored = NormalForm::from_stored("a".repeat(70_000));
    let one = node_fingerprint(&key, IdentifierKind::Email, &stored);
    let batch = node_fingerprints(&key, &[(IdentifierKind::Email, &stored)]);
    assert_eq!(batch, vec![one]);
    // And no client can obtain it.
    let items = [(IdentifierKind::Email, &stored)];
    let from_client = BlindedItems::blind(&items).and_then(|(state, blinded)| {
        let answer = evaluate_blinded(&key, &blinded)?;
        state.finalize(key.public_key(), &answer.elements, &answer.proof)
    });
    assert_eq!(from_client, Err(OprfError::InputLength));
}
