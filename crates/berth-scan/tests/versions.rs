//! The comparators against their package managers' published comparison tables (dpkg's
//! `t-version.c` and Debian Policy §5.6.12, rpm's `rpmvercmp.at`, apk-tools' `version.data`,
//! PEP 440's ordering example, SemVer 2.0 §11), plus property tests that each is a total order.

use std::cmp::Ordering::{self, Equal, Greater, Less};

use berth_scan::version::{Scheme, apk_compare, dpkg_compare, pep440_compare, rpm_compare, rpmvercmp, semver_compare};
use proptest::prelude::*;

fn check(name: &str, cmp: impl Fn(&str, &str) -> Ordering, table: &[(&str, Ordering, &str)]) {
    for (a, want, b) in table {
        assert_eq!(cmp(a, b), *want, "{name}: {a} vs {b}");
        assert_eq!(cmp(b, a), want.reverse(), "{name}: {b} vs {a}");
    }
}

/// Each version is strictly below the next.
fn ascending(name: &str, cmp: impl Fn(&str, &str) -> Ordering, list: &[&str]) {
    for (i, a) in list.iter().enumerate() {
        for b in &list[i + 1..] {
            assert_eq!(cmp(a, b), Less, "{name}: {a} < {b}");
            assert_eq!(cmp(b, a), Greater, "{name}: {b} > {a}");
        }
    }
}

#[test]
fn dpkg_table() {
    check(
        "dpkg",
        dpkg_compare,
        &[
            ("0", Equal, "0"),
            ("0:0", Equal, "0"),
            ("0:0-", Equal, "0"),
            ("0:0-0", Equal, "0"),
            ("0:0.0-0.0", Equal, "0.0-0.0"),
            ("1:0", Greater, "0:1"),
            ("1:0", Greater, "9999"),
            ("1.0", Equal, "1.0-0"),
            ("1.001", Equal, "1.1"),
            ("0:0-0", Less, "0:0-1"),
            ("0:0-a", Less, "0:0-b"),
            ("0:0-a", Greater, "0:0-0"),
            ("0:0-a", Less, "0:0-+"),
            ("0:0.0-0", Less, "0:0.0-+"),
            ("1.0~rc1", Less, "1.0"),
            ("1.0~rc1", Less, "1.0~rc2"),
            ("2.30", Greater, "2.4"),
            ("1.2a", Greater, "1.2"),
            ("1.2+b1", Greater, "1.2"),
            ("1.0+dfsg-1", Greater, "1.0-1"),
            ("3.0.11-1~deb12u1", Less, "3.0.11-1"),
            ("3.0.11-1~deb12u1", Less, "3.0.13-1~deb12u1"),
            ("2.36.1-8+deb11u1", Greater, "2.36.1-8"),
            ("7.88.1-10+deb12u5", Less, "7.88.1-10+deb12u10"),
        ],
    );
    // Policy's example: ~~ < ~~a < ~ < (empty) < a.
    ascending("dpkg", dpkg_compare, &["1.0~~", "1.0~~a", "1.0~", "1.0", "1.0a"]);
}

#[test]
fn rpm_table() {
    check(
        "rpm",
        rpmvercmp,
        &[
            ("1.0", Equal, "1.0"),
            ("1.0", Less, "2.0"),
            ("2.0.1", Equal, "2.0.1"),
            ("2.0", Less, "2.0.1"),
            ("2.0.1a", Greater, "2.0.1"),
            ("5.5p1", Less, "5.5p2"),
            ("5.5p1", Less, "5.5p10"),
            ("10xyz", Less, "10.1xyz"),
            ("xyz10", Equal, "xyz10"),
            ("xyz10", Less, "xyz10.1"),
            ("xyz.4", Equal, "xyz.4"),
            ("xyz.4", Less, "8"),
            ("xyz.4", Less, "2"),
            ("5.5p2", Less, "5.6p1"),
            ("5.6p1", Less, "6.5p1"),
            ("6.0.rc1", Greater, "6.0"),
            ("10b2", Greater, "10a1"),
            ("10a2", Less, "10b2"),
            ("1.0aa", Equal, "1.0aa"),
            ("1.0a", Less, "1.0aa"),
            ("10.0001", Equal, "10.0001"),
            ("10.0001", Equal, "10.1"),
            ("10.0001", Less, "10.0039"),
            ("4.999.9", Less, "5.0"),
            ("20101121", Less, "20101122"),
            ("2_0", Equal, "2_0"),
            ("2.0", Equal, "2_0"),
            ("a", Equal, "a"),
            ("a+", Equal, "a_"),
            ("+a", Equal, "_a"),
            ("+_", Equal, "_+"),
            ("+", Equal, "_"),
            ("1.0~rc1", Less, "1.0"),
            ("1.0~rc1", Less, "1.0~rc2"),
            ("1.0~rc1~git123", Less, "1.0~rc1"),
            ("1.0^", Greater, "1.0"),
            ("1.0^git1", Greater, "1.0"),
            ("1.0^git1", Less, "1.0^git2"),
            ("1.0^git1", Less, "1.01"),
            ("1.0^20160101", Less, "1.0.1"),
            ("1.0^20160102", Greater, "1.0^20160101^git1"),
            ("1.0~rc1^git1", Greater, "1.0~rc1"),
            ("1.0^git1", Greater, "1.0^git1~pre"),
            ("1.0^git1~pre", Greater, "1.0"),
        ],
    );
    check(
        "rpm evr",
        rpm_compare,
        &[
            ("1:1.0-1", Greater, "2.0-1"),
            ("0:1.0-1", Equal, "1.0-1"),
            ("3.0.7-24.el9", Less, "3.0.7-27.el9"),
            ("1.0-1.el8", Less, "1.0-1.el9"),
        ],
    );
}

#[test]
fn apk_table() {
    check(
        "apk",
        apk_compare,
        &[
            ("2.34", Greater, "0.1.0_alpha"),
            ("0.1.0_alpha", Equal, "0.1.0_alpha"),
            ("1.0", Less, "1.0-r1"),
            ("1.2.3-r1", Less, "1.2.3-r10"),
            ("1.1.1t-r0", Less, "1.1.1u-r0"),
            ("3.0.8-r0", Less, "3.0.10-r0"),
            ("1.01", Less, "1.1"),
            ("1.001", Less, "1.01"),
            ("1.0a", Less, "1.0.1"),
            ("1.0_p1", Greater, "1.0-r5"),
            ("1.0_rc1", Less, "1.0_rc2"),
            ("1.0_alpha_p1", Greater, "1.0_alpha"),
            ("1.2.3~abc123-r0", Equal, "1.2.3-r0"),
            ("1.0", Less, "1.0.0"),
        ],
    );
    ascending(
        "apk",
        apk_compare,
        &[
            "1.0_alpha",
            "1.0_beta",
            "1.0_pre",
            "1.0_rc",
            "1.0",
            "1.0_cvs",
            "1.0_svn",
            "1.0_git",
            "1.0_hg",
            "1.0_p",
            "1.0a",
            "1.0b",
            "1.0.1",
        ],
    );
}

#[test]
fn pep440_table() {
    // PEP 440's own ordering example.
    let order = [
        "1.dev0",
        "1.0.dev456",
        "1.0a1",
        "1.0a2.dev456",
        "1.0a12.dev456",
        "1.0a12",
        "1.0b1.dev456",
        "1.0b2",
        "1.0b2.post345.dev456",
        "1.0b2.post345",
        "1.0rc1.dev456",
        "1.0rc1",
        "1.0",
        "1.0+abc.5",
        "1.0+abc.7",
        "1.0+5",
        "1.0.post456.dev34",
        "1.0.post456",
        "1.0.15",
        "1.1.dev1",
    ];
    let cmp = |a: &str, b: &str| pep440_compare(a, b).expect("valid PEP 440");
    ascending("pep440", cmp, &order);
    check(
        "pep440",
        cmp,
        &[
            ("1.0", Equal, "1.0.0"),
            ("v1.0", Equal, "1.0.0.0"),
            ("1.0a1", Equal, "1.0.alpha.1"),
            ("1.0a1", Equal, "1.0-a-1"),
            ("1.0c1", Equal, "1.0rc1"),
            ("1.0pre1", Equal, "1.0rc1"),
            ("1.0-1", Equal, "1.0.post1"),
            ("1.0post1", Equal, "1.0.r1"),
            ("1.0.dev", Equal, "1.0.dev0"),
            ("1!1.0", Greater, "2.0"),
            ("2.31.0", Greater, "2.4"),
            ("1.0A1", Equal, "1.0a1"),
        ],
    );
    for bad in ["1.0.x", "abc", "", "1.0+", "1.0+a..b"] {
        assert_eq!(pep440_compare(bad, "1.0"), None, "{bad} is not PEP 440");
    }
}

#[test]
fn semver_table() {
    let cmp = |a: &str, b: &str| semver_compare(a, b).expect("valid semver");
    ascending(
        "semver",
        cmp,
        &[
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ],
    );
    check(
        "semver",
        cmp,
        &[
            ("1.0.0+build.1", Equal, "1.0.0+build.2"),
            ("v1.2.3", Equal, "1.2.3"),
            ("1.2", Equal, "1.2.0"),
            ("1", Equal, "1.0.0"),
            ("0.0.0-20210101000000-abcdef123456", Less, "0.0.1"),
        ],
    );
    assert_eq!(semver_compare("not.a.version", "1.0.0"), None);
}

/// Checks that `cmp` is a total order on the three values.
fn total_order(cmp: impl Fn(&str, &str) -> Option<Ordering>, a: &str, b: &str, c: &str) -> Result<(), TestCaseError> {
    let (Some(ab), Some(ba), Some(bc), Some(ac)) = (cmp(a, b), cmp(b, a), cmp(b, c), cmp(a, c)) else {
        return Ok(());
    };
    prop_assert_eq!(cmp(a, a), Some(Equal));
    prop_assert_eq!(ab, ba.reverse(), "antisymmetry of {} and {}", a, b);
    if ab != Greater && bc != Greater {
        prop_assert!(ac != Greater, "transitivity: {} <= {} <= {} but {} > {}", a, b, c, a, c);
    }
    Ok(())
}

const DEB: &str = "([0-9]:)?[0-9]{1,3}(\\.[0-9a-z+~]{1,3}){0,3}(-[0-9a-z.+~]{1,4})?";
const RPM: &str = "([0-9]:)?[0-9a-z]{1,3}([._~^+][0-9a-z]{1,3}){0,3}(-[0-9a-z._~^]{1,4})?";
const APK: &str =
    "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}[a-c]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]?){0,2}(-r[0-9]{1,2})?";
const PEP: &str = "([0-9]!)?[0-9]{1,2}(\\.[0-9]{1,2}){0,3}((a|b|rc)[0-9])?(\\.post[0-9])?(\\.dev[0-9])?(\\+[a-z0-9]{1,3}(\\.[a-z0-9]{1,2})?)?";
const SEM: &str =
    "v?[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}(-(alpha|beta|rc|[0-9]{1,2})(\\.[0-9a-z]{1,3}){0,2})?(\\+[a-z0-9]{1,3})?";

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn dpkg_is_a_total_order(a in DEB, b in DEB, c in DEB) {
        total_order(|x, y| Scheme::Dpkg.compare(x, y), &a, &b, &c)?;
    }

    #[test]
    fn dpkg_tilde_sorts_before_release(v in "[0-9]{1,3}(\\.[0-9a-z]{1,3}){0,3}", s in "[a-z0-9]{1,4}") {
        prop_assert_eq!(dpkg_compare(&format!("{v}~{s}"), &v), Less);
        prop_assert_eq!(dpkg_compare(&format!("{v}-1"), &format!("{v}-1~{s}")), Greater);
    }

    #[test]
    fn rpm_is_a_total_order(a in RPM, b in RPM, c in RPM) {
        total_order(|x, y| Scheme::Rpm.compare(x, y), &a, &b, &c)?;
    }

    #[test]
    fn rpm_tilde_and_caret(v in "[0-9]{1,3}(\\.[0-9a-z]{1,3}){0,3}", s in "[a-z0-9]{1,4}") {
        prop_assert_eq!(rpmvercmp(&format!("{v}~{s}"), &v), Less);
        prop_assert_eq!(rpmvercmp(&format!("{v}^{s}"), &v), Greater);
    }

    #[test]
    fn apk_is_a_total_order(a in APK, b in APK, c in APK) {
        total_order(|x, y| Scheme::Apk.compare(x, y), &a, &b, &c)?;
    }

    #[test]
    fn apk_revision_and_pre_release(v in "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}", r in 1u32..50) {
        prop_assert_eq!(apk_compare(&format!("{v}-r{r}"), &v), Greater);
        prop_assert_eq!(apk_compare(&format!("{v}_rc{r}"), &v), Less);
        prop_assert_eq!(apk_compare(&format!("{v}_p{r}"), &format!("{v}-r{r}")), Greater);
    }

    #[test]
    fn pep440_is_a_total_order(a in PEP, b in PEP, c in PEP) {
        total_order(|x, y| Scheme::Pep440.compare(x, y), &a, &b, &c)?;
    }

    #[test]
    fn pep440_phases(major in 0u32..50, minor in 0u32..50, n in 0u32..20) {
        let v = format!("{major}.{minor}");
        let order = [format!("{v}.dev{n}"), format!("{v}a{n}"), format!("{v}b{n}"), format!("{v}rc{n}"), v.clone(), format!("{v}.post{n}")];
        for w in order.windows(2) {
            prop_assert_eq!(pep440_compare(&w[0], &w[1]), Some(Less), "{} < {}", w[0], w[1]);
        }
        prop_assert_eq!(pep440_compare(&format!("{v}.0"), &v), Some(Equal));
    }

    #[test]
    fn semver_is_a_total_order(a in SEM, b in SEM, c in SEM) {
        total_order(|x, y| Scheme::Semver.compare(x, y), &a, &b, &c)?;
    }
}
