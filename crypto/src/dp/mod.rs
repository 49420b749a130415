//! Differential-privacy mechanisms for integer aggregates, on top of OpenDP.
//!
//! The only place where fedq adds noise: every noisy value comes out of an
//! OpenDP measurement (`make_laplace` or `make_gaussian`), which samples
//! discrete noise for integer inputs; nothing here samples by hand.
//!
//! # Neighbouring relation
//! Two datasets are neighbours when one is the other with **one privacy unit
//! added or removed** (unbounded DP). The caller (the node's query engine) has
//! already bounded each unit's rows to the catalog's declared contribution
//! bound and clamped numeric values to their public bounds; from those it
//! computes `sensitivity`: the most the released vector can change, in L1 norm
//! for pure DP ([`PrivacyBudget::Epsilon`]) or in L2 norm for zCDP
//! ([`PrivacyBudget::Rho`]). The length and order of the vector (the groups)
//! must come from public domains, never from the data.
//!
//! # Budget semantics
//! A [`PrivacyBudget`] is what one release may cost at most. The cost that is
//! actually charged is the [`PrivacyLoss`] returned in [`NoisyRelease::loss`],
//! computed by OpenDP's privacy map of the measurement at `sensitivity`; it is
//! at most the budget (up to 1e-9 relative; otherwise the release is refused
//! before any noise is drawn).
//!
//! Losses of successive releases on the same data compose by **basic
//! (sequential) composition**: epsilons add up and rhos add up
//! ([`PrivacyLoss::compose`]). Every release also states its cost in **one
//! currency**, zCDP rho ([`PrivacyLoss::cost`]): a Gaussian release costs its
//! rho, a Laplace release what OpenDP's `make_pureDP_to_zCDP` maps its
//! epsilon to (epsilon²/2, BS16 Proposition 1.4). Costs add up under zCDP
//! composition, so one cap bounds every mix of mechanisms, and
//! [`approximate_dp`] says what a total amounts to as (epsilon, delta)-DP
//! (OpenDP's `make_zCDP_to_approxDP` curve). A mean is released as a sum and
//! a count, each with [`PrivacyBudget::split`]`(2)` of the budget.
//!
//! # Citations
//! * [CKS20 The Discrete Gaussian for Differential Privacy](https://arxiv.org/abs/2004.00010)
//! * [BS16 Concentrated Differential Privacy](https://arxiv.org/abs/1605.02065)
//! * [DR14 Algorithmic Foundations of DP, Thm 3.14](https://www.cis.upenn.edu/~aaroth/Papers/privacybook.pdf)

use opendp::combinators::{make_pureDP_to_zCDP, ConcentratedMeasure};
use opendp::core::{Measure, Measurement, Metric};
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::error::Fallible;
use opendp::measurements::{make_gaussian, make_laplace};
use opendp::measures::{MaxDivergence, ZeroConcentratedDivergence};
use opendp::metrics::{L1Distance, L2Distance};

#[cfg(test)]
mod tests;

/// Largest relative excess of the mapped loss over the budget that is accepted.
const CALIBRATION_TOLERANCE: f64 = 1e-9;

/// Most one-ulp nudges of the scale when rounding puts the loss above budget.
const MAX_SCALE_NUDGES: usize = 8;

/// `ln(20)`: the two-sided 95% quantile of Laplace(1) is `ln(1/0.05)`.
const LN_20: f64 = 2.995_732_273_553_991;

/// Two-sided 95% quantile of the standard normal distribution.
const Z_95: f64 = 1.959_963_984_540_054;

/// Errors of the DP mechanisms. Messages carry no data values.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum DpError {
    /// Epsilon was not finite or not strictly positive.
    #[error("epsilon must be finite and greater than zero")]
    InvalidEpsilon,
    /// Rho was not finite or not strictly positive.
    #[error("rho must be finite and greater than zero")]
    InvalidRho,
    /// A sensitivity of zero would mean no noise; refused.
    #[error("sensitivity must be greater than zero")]
    ZeroSensitivity,
    /// OpenDP refused the measurement, or its loss exceeds the budget.
    #[error("calibration failed: {0}")]
    Calibration(String),
    /// There was nothing to release.
    #[error("nothing to release")]
    Empty,
}

/// `new`, `get` and the serde conversions of a privacy-parameter newtype.
macro_rules! privacy_parameter {
    ($name:ident, $invalid:expr) => {
        impl $name {
            /// Checks that `v` is finite and greater than zero.
            pub fn new(v: f64) -> Result<Self, DpError> {
                if v.is_finite() && v > 0.0 {
                    Ok(Self(v))
                } else {
                    Err($invalid)
                }
            }

            /// The value, finite and > 0.
            pub fn get(self) -> f64 {
                self.0
            }
        }

        impl TryFrom<f64> for $name {
            type Error = DpError;
            fn try_from(v: f64) -> Result<Self, DpError> {
                Self::new(v)
            }
        }

        impl From<$name> for f64 {
            fn from(p: $name) -> f64 {
                p.0
            }
        }
    };
}

/// Pure-DP privacy parameter: finite and > 0.
///
/// # Proof Definition
/// Every value of this type holds a finite `f64` strictly greater than zero;
/// deserialisation goes through [`Epsilon::new`] and refuses anything else.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Epsilon(f64);

privacy_parameter!(Epsilon, DpError::InvalidEpsilon);

/// zCDP privacy parameter: finite and > 0.
///
/// # Proof Definition
/// Every value of this type holds a finite `f64` strictly greater than zero;
/// deserialisation goes through [`Rho::new`] and refuses anything else.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Rho(f64);

privacy_parameter!(Rho, DpError::InvalidRho);

/// The most one release may cost: pure DP (Laplace) or zCDP (Gaussian).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PrivacyBudget {
    /// epsilon-DP, released with discrete Laplace noise.
    Epsilon(Epsilon),
    /// rho-zCDP, released with discrete Gaussian noise.
    Rho(Rho),
}

impl PrivacyBudget {
    /// Equal shares of the budget, for a release made of `parts` releases
    /// (a mean = sum + count is `split(2)`); `parts == 0` is treated as 1.
    ///
    /// # Proof Definition
    /// `parts` releases each costing at most the returned budget cost at most
    /// `self` under basic composition (up to float rounding of one division,
    /// which the charged [`PrivacyLoss`] reflects). A share that underflows
    /// is kept at the smallest positive `f64`; [`release_integers`] refuses
    /// such a budget (the scale is not finite), so it can never be spent.
    pub fn split(self, parts: u32) -> PrivacyBudget {
        let share = |v: f64| {
            let s = v / f64::from(parts.max(1));
            if s > 0.0 {
                s
            } else {
                f64::from_bits(1)
            }
        };
        match self {
            PrivacyBudget::Epsilon(e) => PrivacyBudget::Epsilon(Epsilon(share(e.0))),
            PrivacyBudget::Rho(r) => PrivacyBudget::Rho(Rho(share(r.0))),
        }
    }
}

/// What a release cost, as computed by OpenDP's privacy map. A Laplace
/// release has `rho == 0`, a Gaussian one `epsilon == 0`; `cost` is what
/// gets charged, in the one currency of every budget.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct PrivacyLoss {
    /// Pure-DP loss (MaxDivergence).
    pub epsilon: f64,
    /// zCDP loss (ZeroConcentratedDivergence) of Gaussian releases.
    pub rho: f64,
    /// The whole loss as zCDP rho: `rho`, plus OpenDP's zCDP cast of the
    /// pure-DP part.
    #[serde(default)]
    pub cost: f64,
}

impl PrivacyLoss {
    /// Basic (sequential) composition: the loss of both releases together.
    ///
    /// # Citations
    /// * [DR14, Theorem 3.14](https://www.cis.upenn.edu/~aaroth/Papers/privacybook.pdf) (epsilon-DP)
    /// * [BS16, Lemma 2.3](https://arxiv.org/abs/1605.02065) (zCDP)
    pub fn compose(self, other: PrivacyLoss) -> PrivacyLoss {
        PrivacyLoss {
            epsilon: self.epsilon + other.epsilon,
            rho: self.rho + other.rho,
            cost: self.cost + other.cost,
        }
    }
}

/// What a pure-DP release of `epsilon` costs in zCDP rho: `epsilon² / 2`,
/// the map of OpenDP's `make_pureDP_to_zCDP` (which charges releases; this
/// converts configured caps).
pub fn pure_cost(epsilon: f64) -> f64 {
    epsilon * epsilon / 2.0
}

/// The largest epsilon one pure-DP release may have and still cost at most
/// `cost` (rho): the inverse of OpenDP's `make_pureDP_to_zCDP` map,
/// `rho = epsilon² / 2`. For telling people what is left, never for charging.
pub fn epsilon_within(cost: f64) -> f64 {
    (2.0 * cost.max(0.0)).sqrt()
}

/// What a cost of `rho` under zCDP amounts to as (epsilon, `delta`)-DP:
/// OpenDP's `make_zCDP_to_approxDP` privacy profile, read at `delta`.
pub fn approximate_dp(rho: f64, delta: f64) -> Result<f64, DpError> {
    if rho == 0.0 {
        return Ok(0.0);
    }
    ZeroConcentratedDivergence::convert(rho)
        .and_then(|profile| profile.epsilon(delta))
        .map_err(opendp_error)
}

/// Noisy values plus what a reader needs to interpret them.
#[derive(Debug, Clone, PartialEq)]
pub struct NoisyRelease {
    /// One noisy value per input value, same order.
    pub values: Vec<i64>,
    /// OpenDP scale parameter (Laplace `b`, Gaussian `sigma`).
    pub scale: f64,
    /// Variance of the noise per value (an upper bound; see the formulas in `release_integers`).
    pub variance: f64,
    /// Per value: the 95% interval is `value ± ci95_half_width`.
    pub ci95_half_width: f64,
    /// The loss from OpenDP's privacy map at the given sensitivity.
    pub loss: PrivacyLoss,
}

/// Releases integer aggregates (a count, a clamped integer sum, or a vector
/// of per-group counts/sums) with noise calibrated so that the whole vector
/// costs at most `budget`.
///
/// `sensitivity` is how much the vector can change (L1 norm for
/// [`PrivacyBudget::Epsilon`], L2 norm for [`PrivacyBudget::Rho`]) when one
/// privacy unit is added or removed; the caller computes it from the declared
/// contribution bound and clamping bounds.
///
/// The scale is chosen analytically (Laplace: `sensitivity / epsilon`;
/// Gaussian: `sensitivity / sqrt(2 rho)`), the OpenDP measurement is built
/// over `VectorDomain<AtomDomain<i64>>` with `L1Distance<i64>` /
/// `L2Distance<i64>`, and its privacy map is evaluated at `sensitivity`. If
/// float rounding puts the mapped loss above the budget, the scale is nudged
/// up by single ulps; if it still exceeds the budget by more than 1e-9
/// relative, the release is refused before any noise is drawn. Noisy values
/// saturate at the `i64` bounds (OpenDP post-processing).
///
/// Interpretation (formulas, no sampling): `variance` is `2·scale²` (Laplace)
/// or `scale²` (Gaussian), upper bounds for the discrete noise;
/// `ci95_half_width` is `scale·ln 20` (Laplace) or `1.96·scale` (Gaussian).
///
/// # Proof Definition
/// Returns an error, or a release whose `values` are the output of an OpenDP
/// measurement `M` such that, for any two inputs whose true vectors differ by
/// at most `sensitivity` (L1 resp. L2), `M` satisfies `loss.epsilon`-DP
/// (resp. `loss.rho`-zCDP), with `loss` at most `budget·(1 + 1e-9)`.
///
/// # Citations
/// * OpenDP `make_laplace` (docs.rs/opendp/0.16.0, `measurements::make_laplace`;
///   proof `measurements/noise/distribution/laplace/make_laplace.tex`)
/// * OpenDP `make_gaussian` (docs.rs/opendp/0.16.0, `measurements::make_gaussian`;
///   proof `measurements/noise/distribution/gaussian/make_gaussian.tex`)
/// * [GRS12 Universally Utility-Maximizing Privacy Mechanisms](https://theory.stanford.edu/~tim/papers/priv.pdf)
/// * [CKS20 The Discrete Gaussian for Differential Privacy](https://arxiv.org/abs/2004.00010)
pub fn release_integers(
    true_values: &[i64],
    sensitivity: u64,
    budget: PrivacyBudget,
) -> Result<NoisyRelease, DpError> {
    if true_values.is_empty() {
        return Err(DpError::Empty);
    }
    let (mechanism, calibration) = build(sensitivity, budget)?;
    Ok(NoisyRelease {
        values: mechanism(&true_values.to_vec()).map_err(opendp_error)?,
        scale: calibration.scale,
        variance: calibration.variance,
        ci95_half_width: calibration.ci95_half_width,
        loss: calibration.loss,
    })
}

/// What [`release_integers`] at `sensitivity` and `budget` would add and
/// cost, without drawing noise: the same OpenDP measurement is built and its
/// privacy map evaluated, so a dry run and the release cannot disagree.
pub fn calibrate_integers(sensitivity: u64, budget: PrivacyBudget) -> Result<Calibration, DpError> {
    Ok(build(sensitivity, budget)?.1)
}

/// The noise of a release before it is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// OpenDP scale parameter (Laplace `b`, Gaussian `sigma`).
    pub scale: f64,
    /// Variance of the noise per value (an upper bound).
    pub variance: f64,
    /// Per value: the 95% interval is `value ± ci95_half_width`.
    pub ci95_half_width: f64,
    /// The loss from OpenDP's privacy map at the given sensitivity.
    pub loss: PrivacyLoss,
}

/// Draws the noise of a calibrated measurement.
type Mechanism = Box<dyn Fn(&Vec<i64>) -> Fallible<Vec<i64>>>;

fn build(sensitivity: u64, budget: PrivacyBudget) -> Result<(Mechanism, Calibration), DpError> {
    if sensitivity == 0 {
        return Err(DpError::ZeroSensitivity);
    }
    let d_in = i64::try_from(sensitivity)
        .map_err(|_| DpError::Calibration("sensitivity exceeds i64::MAX".to_owned()))?;
    let space = || VectorDomain::new(AtomDomain::<i64>::default());
    match budget {
        PrivacyBudget::Epsilon(eps) => {
            let target = eps.get();
            let first_scale = sensitivity as f64 / target;
            let (m, scale, mapped) = calibrate(first_scale, target, d_in, |scale| {
                make_laplace::<VectorDomain<AtomDomain<i64>>, L1Distance<i64>, MaxDivergence>(
                    space(),
                    L1Distance::<i64>::default(),
                    scale,
                    None,
                )
            })?;
            // The one currency: OpenDP's own zCDP cast of this measurement.
            let cost = make_pureDP_to_zCDP(m.clone())
                .and_then(|cast| cast.map(&d_in))
                .map_err(opendp_error)?;
            let calibration = Calibration {
                scale,
                variance: laplace::noise_variance(scale),
                ci95_half_width: laplace::ci95_half_width(scale),
                loss: PrivacyLoss {
                    epsilon: mapped,
                    rho: 0.0,
                    cost,
                },
            };
            Ok((Box::new(move |x| m.invoke(x)), calibration))
        }
        PrivacyBudget::Rho(rho) => {
            let target = rho.get();
            let first_scale = sensitivity as f64 / (2.0 * target).sqrt();
            let (m, scale, mapped) = calibrate(first_scale, target, d_in, |scale| {
                make_gaussian::<
                    VectorDomain<AtomDomain<i64>>,
                    L2Distance<i64>,
                    ZeroConcentratedDivergence,
                >(space(), L2Distance::<i64>::default(), scale, None)
            })?;
            let calibration = Calibration {
                scale,
                variance: gaussian::noise_variance(scale),
                ci95_half_width: gaussian::ci95_half_width(scale),
                loss: PrivacyLoss {
                    epsilon: 0.0,
                    rho: mapped,
                    cost: mapped,
                },
            };
            Ok((Box::new(move |x| m.invoke(x)), calibration))
        }
    }
}

/// A privacy amount for people: four decimals at most, no trailing zeros.
pub fn amount(value: f64) -> String {
    let fixed = format!("{value:.4}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "0" && value > 0.0 {
        format!("{value:.1e}")
    } else {
        trimmed.to_owned()
    }
}

/// An integer-vector noise measurement with a scalar (`f64`) privacy loss.
type IntVectorMeasurement<MI, MO> = Measurement<VectorDomain<AtomDomain<i64>>, MI, MO, Vec<i64>>;

/// Builds the measurement at `scale` and maps `d_in`; while rounding puts the
/// loss above `target`, nudges the scale up one ulp. Returns (measurement,
/// scale, mapped loss) or refuses (see [`check_within_budget`]). No noise.
fn calibrate<MI, MO>(
    mut scale: f64,
    target: f64,
    d_in: i64,
    build: impl Fn(f64) -> Fallible<IntVectorMeasurement<MI, MO>>,
) -> Result<(IntVectorMeasurement<MI, MO>, f64, f64), DpError>
where
    MI: Metric<Distance = i64>,
    MO: Measure<Distance = f64>,
{
    let mut nudges = 0;
    loop {
        let m = build(scale).map_err(opendp_error)?;
        let mapped = m.map(&d_in).map_err(opendp_error)?;
        if mapped > target && nudges < MAX_SCALE_NUDGES {
            scale = scale.next_up();
            nudges += 1;
            continue;
        }
        check_within_budget(mapped, target)?;
        return Ok((m, scale, mapped));
    }
}

/// Refuses a mapped loss that is not a finite, non-negative number at most
/// `target·(1 + 1e-9)`.
fn check_within_budget(mapped: f64, target: f64) -> Result<(), DpError> {
    if !mapped.is_finite() || mapped < 0.0 {
        return Err(DpError::Calibration(
            "privacy map returned a non-finite loss".to_owned(),
        ));
    }
    if mapped > target * (1.0 + CALIBRATION_TOLERANCE) {
        return Err(DpError::Calibration(format!(
            "mapped loss {mapped} exceeds budget {target}"
        )));
    }
    Ok(())
}

/// OpenDP's variant and message; they name parameters, never data values.
fn opendp_error(e: opendp::error::Error) -> DpError {
    match e.message {
        Some(msg) => DpError::Calibration(format!("{}: {msg}", e.variant)),
        None => DpError::Calibration(e.variant.to_string()),
    }
}

/// Interpretation formulas for the discrete Laplace noise of `make_laplace`
/// over integers. They describe the noise; they never sample it.
mod laplace {
    use super::LN_20;

    /// `2·scale²`: the variance of continuous Laplace(scale). The discrete
    /// Laplace has variance `1 / (2·sinh²(1 / (2·scale)))`, which is at most
    /// this (since `sinh x >= x`), so the reported value is conservative.
    pub(super) fn noise_variance(scale: f64) -> f64 {
        2.0 * scale * scale
    }

    /// `scale·ln(20)`: the exact two-sided 95% quantile of continuous
    /// Laplace(scale), `P(|X| > scale·ln 20) = exp(-ln 20) = 0.05`. For the
    /// discrete noise, coverage is close to 95% once scale is a few units
    /// (about 94% at scale 2, 94.8% at scale 10).
    pub(super) fn ci95_half_width(scale: f64) -> f64 {
        scale * LN_20
    }
}

/// Interpretation formulas for the discrete Gaussian noise of `make_gaussian`
/// over integers. They describe the noise; they never sample it.
mod gaussian {
    use super::Z_95;

    /// `scale²`: the discrete Gaussian's variance is strictly below `sigma²`
    /// (CKS20, Corollary 9), so the reported value is conservative.
    pub(super) fn noise_variance(scale: f64) -> f64 {
        scale * scale
    }

    /// `1.96·scale`: the two-sided 95% quantile of the continuous Gaussian
    /// with standard deviation `scale`.
    pub(super) fn ci95_half_width(scale: f64) -> f64 {
        Z_95 * scale
    }
}
