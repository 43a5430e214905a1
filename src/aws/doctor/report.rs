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
            let res = match r.outcome {
                Outcome::Pass => "pass",
                Outcome::Warn => "warn",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "skip",
            };
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

    pub(super) fn pass(&mut self, check: &str, detail: impl Into<String>) {
        self.add(check, Outcome::Pass, detail, "-");
    }
}
