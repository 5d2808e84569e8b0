//! Trace analysis: where a trace's time went.

/// A span's self time: the part of `[start, end)` that none of its children covers. Children are
/// clipped to the parent, and overlapping children (concurrent calls) count once.
pub fn self_time_ns(start: u64, end: u64, children: &[(u64, u64)]) -> u64 {
    let mut intervals: Vec<(u64, u64)> = children
        .iter()
        .map(|&(s, e)| (s.max(start), e.min(end)))
        .filter(|(s, e)| s < e)
        .collect();
    intervals.sort_unstable();
    let mut covered = 0;
    let mut reach = start;
    for (s, e) in intervals {
        let from = s.max(reach);
        if e > from {
            covered += e - from;
            reach = e;
        }
    }
    end.saturating_sub(start) - covered
}

#[cfg(test)]
mod tests {
    use super::self_time_ns;

    #[test]
    fn children_are_subtracted_once_and_clipped() {
        assert_eq!(self_time_ns(0, 100, &[]), 100);
        assert_eq!(self_time_ns(0, 100, &[(10, 30), (50, 60)]), 70);
        // Concurrent children overlap: covered 10..40 once.
        assert_eq!(self_time_ns(0, 100, &[(10, 30), (20, 40)]), 70);
        // A child running past its parent only covers the parent's part.
        assert_eq!(self_time_ns(0, 100, &[(90, 150), (0, 5)]), 85);
        assert_eq!(self_time_ns(0, 100, &[(0, 100), (10, 20)]), 0);
    }
}
