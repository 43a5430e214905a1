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

    /// A fixed-width table.
    pub fn table(&self) -> String {
        let w = self
            .rows
            .iter()
            .map(|r| r.check.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!(
            "{:<w$}  {:<6}  {:<44}  STS ERROR IF IT FAILS\n",
            "CHECK", "RESULT", "DETAIL"
        );
        for r in &self.rows {
            let res = r.outcome.as_str();
            let sts = if r.outcome == Outcome::Pass {
                "-"
            } else {
                r.sts_error
            };
            out.push_str(&format!(
                "{:<w$}  {res:<6}  {:<44}  {sts}\n",
                r.check, r.detail
            ));
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
