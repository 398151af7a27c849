//! "Did you mean …": the known name closest to a mistyped one, as clap
//! suggests flags (with the same crate, strsim).

/// The candidate most like `wanted`, when one is alike enough to be what
/// was meant (clap's threshold: Jaro-Winkler similarity above 0.7).
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|c| *c != wanted)
        .map(|c| (strsim::jaro_winkler(wanted, c), c))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_likely_name_or_none() {
        let known = ["production", "production_queue", "tenants/acme/production"];
        assert_eq!(closest("prodution", known), Some("production"));
        assert_eq!(closest("production_queu", known), Some("production_queue"));
        assert_eq!(closest("zzz", known), None);
        assert_eq!(closest("b2", ["b2prod", "r2"]), Some("b2prod"));
    }
}
