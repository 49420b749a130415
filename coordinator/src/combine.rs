//! Adding up the nodes' noisy statistics: per group, the sum of the nodes'
//! estimates and of their noise variances (independent noise adds), and a
//! 95% interval; a mean by the delta method.

use fedq_proto::v1;

/// One group's totals over the nodes that answered.
#[derive(Debug, Clone, PartialEq)]
struct GroupTotal {
    key: Vec<String>,
    value: f64,
    variance: f64,
    count: f64,
    count_variance: f64,
}

/// The running totals of every group, in the order the first node lists them.
#[derive(Debug, Default)]
pub struct StatsTotals {
    groups: Vec<GroupTotal>,
}

impl StatsTotals {
    /// Adds one node's groups.
    pub fn add(&mut self, groups: &[v1::StatsGroup]) {
        for group in groups {
            match self.groups.iter_mut().find(|t| t.key == group.key) {
                Some(total) => {
                    total.value += group.value;
                    total.variance += group.variance;
                    total.count += group.count;
                    total.count_variance += group.count_variance;
                }
                None => self.groups.push(GroupTotal {
                    key: group.key.clone(),
                    value: group.value,
                    variance: group.variance,
                    count: group.count,
                    count_variance: group.count_variance,
                }),
            }
        }
    }

    /// The combined estimate per group; for a mean, the ratio of the summed
    /// values to the summed counts.
    pub fn combined(self, is_mean: bool) -> Vec<v1::CombinedGroup> {
        self.groups
            .into_iter()
            .map(|total| {
                let (estimate, variance) = if is_mean {
                    // Delta method for a ratio of independent noisy totals; the
                    // count is floored at 1 so an empty group does not divide by zero.
                    let n = total.count.max(1.0);
                    let mean = total.value / n;
                    (
                        mean,
                        total.variance / (n * n) + mean * mean * total.count_variance / (n * n),
                    )
                } else {
                    (total.value, total.variance)
                };
                let half = 1.96 * variance.sqrt();
                v1::CombinedGroup {
                    key: total.key,
                    estimate,
                    ci95_low: estimate - half,
                    ci95_high: estimate + half,
                    variance,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(key: &str, value: f64, variance: f64, count: f64) -> v1::StatsGroup {
        v1::StatsGroup {
            key: vec![key.to_owned()],
            value,
            variance,
            count,
            count_variance: variance,
        }
    }

    #[test]
    fn sums_values_and_variances_per_group_in_first_seen_order() {
        let mut totals = StatsTotals::default();
        totals.add(&[group("a", 10.0, 4.0, 0.0), group("b", 1.0, 1.0, 0.0)]);
        totals.add(&[group("b", 2.0, 1.0, 0.0), group("a", 5.0, 5.0, 0.0)]);
        let combined = totals.combined(false);
        assert_eq!(combined[0].key, vec!["a"]);
        assert_eq!(combined[0].estimate, 15.0);
        assert_eq!(combined[0].variance, 9.0);
        assert!((combined[0].ci95_high - (15.0 + 1.96 * 3.0)).abs() < 1e-9);
        assert_eq!(combined[1].estimate, 3.0);
    }

    #[test]
    fn a_mean_divides_summed_values_by_summed_counts() {
        let mut totals = StatsTotals::default();
        totals.add(&[group("a", 100.0, 0.0, 10.0)]);
        totals.add(&[group("a", 300.0, 0.0, 30.0)]);
        let combined = totals.combined(true);
        assert_eq!(combined[0].estimate, 10.0);
    }
}
