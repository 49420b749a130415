//! Shamir sharing of the OPRF key over the ristretto255 scalar field: the
//! dealer, the Lagrange coefficients every combination uses, and the check
//! that published shares are consistent ("in the exponent", on `k_i·G`).

use rand::rngs::OsRng;
use voprf::Group;
use zeroize::Zeroizing;

use super::key::{KeyShare, SharePublicKey, ThresholdPublicKey};
use super::{ToprfError, MAX_NODES};
use crate::oprf::{Point, Scalar, Suite};

/// Refuses anything but `1 <= threshold <= nodes <= MAX_NODES`.
fn check_range(threshold: u16, nodes: u16) -> Result<(), ToprfError> {
    if threshold == 0 || threshold > nodes || nodes > MAX_NODES {
        return Err(ToprfError::ThresholdRange { threshold, nodes });
    }
    Ok(())
}

/// The dealer: draws a key `k`, shares it `threshold`-of-`nodes` and returns
/// the public key `K = k·G` (with the threshold) and the shares of indices
/// `1..=nodes`, in order. `k` itself is wiped before returning: from here on
/// only `threshold` shares together can evaluate.
pub fn deal(threshold: u16, nodes: u16) -> Result<(ThresholdPublicKey, Vec<KeyShare>), ToprfError> {
    check_range(threshold, nodes)?;
    loop {
        // Coefficients `a_0 = k, a_1, …, a_{t-1}`, all non-zero (so the
        // polynomial has degree exactly t-1).
        let coefficients: Zeroizing<Vec<Scalar>> = Zeroizing::new(
            (0..threshold)
                .map(|_| <Suite as Group>::random_scalar(&mut OsRng))
                .collect(),
        );
        let shares: Option<Vec<KeyShare>> = (1..=nodes)
            .map(|index| {
                let secret = Zeroizing::new(evaluate(&coefficients, index));
                KeyShare::from_scalar(index, &secret)
            })
            .collect();
        // A share of zero (probability about n·2^-252) is not a valid VOPRF
        // key; drawing again keeps every share usable.
        if let Some(shares) = shares {
            let public =
                ThresholdPublicKey::from_point(threshold, Point::mul_base(&coefficients[0]));
            return Ok((public, shares));
        }
    }
}

/// `f(x)` by Horner's rule, for `f` of the given coefficients (constant first).
fn evaluate(coefficients: &[Scalar], x: u16) -> Scalar {
    let x = Scalar::from(u64::from(x));
    coefficients
        .iter()
        .rev()
        .fold(Scalar::ZERO, |acc, coefficient| acc * x + coefficient)
}

/// Lagrange coefficients at `x` for the points at `indices`, which must be
/// distinct and non-zero: `λ_i(x) = Π_{j≠i} (x − x_j) / (x_i − x_j)`.
///
/// Callers check distinctness; a repeated index would give a zero
/// denominator, whose `invert` is zero (a wrong answer, not a panic).
pub(super) fn lagrange_at(x: u16, indices: &[u16]) -> Vec<Scalar> {
    let x = Scalar::from(u64::from(x));
    let points: Vec<Scalar> = indices
        .iter()
        .map(|&index| Scalar::from(u64::from(index)))
        .collect();
    points
        .iter()
        .enumerate()
        .map(|(i, x_i)| {
            let (numerator, denominator) = points
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .fold((Scalar::ONE, Scalar::ONE), |(num, den), (_, x_j)| {
                    (num * (x - x_j), den * (x_i - x_j))
                });
            numerator * denominator.invert()
        })
        .collect()
}

/// `Σ λ_i·P_i`.
pub(super) fn combine<'a>(
    coefficients: &[Scalar],
    points: impl IntoIterator<Item = &'a Point>,
) -> Point {
    coefficients
        .iter()
        .zip(points)
        .map(|(coefficient, point)| point * coefficient)
        .sum()
}

/// Refuses a repeated index among `indices` (each in 1..=[`MAX_NODES`]).
pub(super) fn check_distinct(indices: impl IntoIterator<Item = u16>) -> Result<(), ToprfError> {
    let mut seen = [false; MAX_NODES as usize + 1];
    for index in indices {
        let slot = seen
            .get_mut(usize::from(index))
            .ok_or(ToprfError::ShareIndex(index))?;
        if std::mem::replace(slot, true) {
            return Err(ToprfError::DuplicateShare(index));
        }
    }
    Ok(())
}

/// Checks that the public shares lie on one polynomial of degree `t-1`
/// whose value at 0 is `K`: interpolates (in the exponent) from the first `t`
/// shares, and compares at 0 and at every other share's index. Refuses a
/// repeated index and fewer than `t` shares.
///
/// A client runs it on the federation file before trusting its shares; with
/// only `t` shares the check at 0 is the one that binds them to `K`. The cost
/// is `t` scalar multiplications per share beyond the first `t`, plus `t`.
pub fn check_public_shares(
    public: &ThresholdPublicKey,
    shares: &[SharePublicKey],
) -> Result<(), ToprfError> {
    check_distinct(shares.iter().map(SharePublicKey::index))?;
    let needed = usize::from(public.threshold());
    if shares.len() < needed {
        return Err(ToprfError::NotEnoughShares {
            got: shares.len(),
            needed,
        });
    }
    let (basis, others) = shares.split_at(needed);
    let indices: Vec<u16> = basis.iter().map(SharePublicKey::index).collect();
    let at = |x: u16| {
        combine(
            &lagrange_at(x, &indices),
            basis.iter().map(SharePublicKey::point),
        )
    };
    if at(0) != *public.point() {
        return Err(ToprfError::KeyMismatch);
    }
    for share in others {
        if at(share.index()) != *share.point() {
            return Err(ToprfError::InconsistentShares(share.index()));
        }
    }
    Ok(())
}
