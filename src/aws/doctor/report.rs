//! The doctor's findings: one row per check, its outcome and the STS error it
//! would cause, rendered as a table; any failure fails `aws check`.

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Works, but worth a look.
    Warn,
    /// STS would fail.
    Fail,
    /// Not checked (missing input or an earlier failure).
    Skip,
}

impl Outcome {
    /// As the table and JSON show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        }
    }
}

/// The width of the table's detail column.
const DETAIL_WIDTH: usize = 44;

/// `text` in lines of at most `width` characters, broken at spaces; a word
/// longer than a line (a URL, a thumbprint) is cut.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = line.chars().count();
            let room = if used == 0 {
                width
            } else {
                width.saturating_sub(used + 1)
            };
            if word.len() <= room {
                if used > 0 {
                    line.push(' ');
                }
                line.extend(word.iter());
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            let rest = word.split_off(width);
            lines.push(word.into_iter().collect());
            word = rest;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was checked.
    pub check: String,
    /// How it went.
    pub outcome: Outcome,
    /// Details.
    pub detail: String,
    /// What STS answers when this fails.
    pub sts_error: &'static str,
}

/// The report.
#[derive(Debug, Default)]
pub struct Report {
    /// The rows, in order.
    pub rows: Vec<Row>,
}

impl Report {
    pub(super) fn add(
        &mut self,
        check: &str,
        outcome: Outcome,
        detail: impl Into<String>,
        sts_error: &'static str,
    ) {
        self.rows.push(Row {
            check: check.into(),
            outcome,
            detail: detail.into(),
            sts_error,
        });
    }

    pub(super) fn pass_or_fail(
        &mut self,
        check: &str,
        ok: bool,
        detail: impl Into<String>,
        sts_error: &'static str,
    ) {
        let outcome = if ok { Outcome::Pass } else { Outcome::Fail };
        self.add(check, outcome, detail, sts_error);
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.outcome == Outcome::Fail)
    }

    /// The checks that failed, by name.
    pub fn failures(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|r| r.outcome == Outcome::Fail)
            .map(|r| r.check.as_str())
            .collect()
    }

    /// A fixed-width table. A detail longer than its column wraps onto the
    /// next lines of that column, so the STS column stays aligned.
    pub fn table(&self) -> String {
        let w = self
            .rows
            .iter()
            .map(|r| r.check.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!(
            "{:<w$}  {:<6}  {:<DETAIL_WIDTH$}  STS ERROR IF IT FAILS\n",
            "CHECK", "RESULT", "DETAIL"
        );
        for r in &self.rows {
            let sts = if r.outcome == Outcome::Pass {
                "-"
            } else {
                r.sts_error
            };
            let lines = wrap(&r.detail, DETAIL_WIDTH);
            for (i, line) in lines.iter().enumerate() {
                let row = if i == 0 {
                    format!(
                        "{:<w$}  {:<6}  {line:<DETAIL_WIDTH$}  {sts}",
                        r.check,
                        r.outcome.as_str()
                    )
                } else {
                    format!("{:<w$}  {:<6}  {line}", "", "")
                };
                out.push_str(row.trim_end());
                out.push('\n');
            }
        }
        out
    }

    /// The report as JSON, for `aws check --json`.
    pub fn to_json(&self, issuer: &str) -> serde_json::Value {
        serde_json::json!({
            "issuer": issuer,
            "passed": !self.failed(),
            "checks": self.rows.iter().map(|r| serde_json::json!({
                "check": r.check,
                "result": r.outcome.as_str(),
                "detail": r.detail,
                "sts_error": (r.outcome != Outcome::Pass).then_some(r.sts_error),
            })).collect::<Vec<_>>(),
        })
    }

    pub(super) fn pass(&mut self, check: &str, detail: impl Into<String>) {
        self.add(check, Outcome::Pass, detail, "-");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_details_wrap_inside_their_column() {
        let mut r = Report::default();
        r.add("short", Outcome::Pass, "ok", "-");
        let long = format!(
            "error sending request for url (https://127.0.0.1:8443/.well-known/openid-configuration): {}",
            "invalid peer certificate: UnknownIssuer"
        );
        r.add(
            "discovery answers within 5 s",
            Outcome::Fail,
            long.clone(),
            "InvalidIdentityToken",
        );
        let table = r.table();
        let lines: Vec<&str> = table.lines().collect();
        // The STS column starts at the same place on every row that has one.
        let sts_at = lines[0].find("STS ERROR").unwrap();
        assert_eq!(
            lines[1].find('-').map(|_| lines[1].rfind('-').unwrap()),
            Some(sts_at),
            "{table}"
        );
        assert_eq!(
            lines[2].find("InvalidIdentityToken"),
            Some(sts_at),
            "{table}"
        );
        // No line runs past the detail column into the STS column, and no
        // character of the detail is lost.
        let detail_at = lines[0].find("DETAIL").unwrap();
        let mut rejoined = String::new();
        for l in &lines[2..] {
            let detail = l.get(detail_at..).unwrap_or_default();
            let detail = detail
                .split("  InvalidIdentityToken")
                .next()
                .unwrap()
                .trim_end();
            assert!(detail.chars().count() <= DETAIL_WIDTH, "{table}");
            rejoined.push_str(detail);
            rejoined.push(' ');
        }
        assert_eq!(
            rejoined.split_whitespace().collect::<String>(),
            long.split_whitespace().collect::<String>()
        );
    }

    #[test]
    fn wrap_breaks_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("a b c", 3), ["a b", "c"]);
        assert_eq!(wrap("abcdefg", 3), ["abc", "def", "g"]);
        assert_eq!(wrap("", 3), [""]);
        assert_eq!(wrap("ab abcdefgh", 4), ["ab", "abcd", "efgh"]);
    }
}
