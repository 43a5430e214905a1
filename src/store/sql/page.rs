//! A newest-first page of a log (the audit, the decision records): the
//! conditions a filter sets, its cursor and its limit, written once.

use sqlx::AnyPool;
use sqlx::any::AnyRow;

/// A parameter of a condition.
pub(super) enum Param {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
}

impl From<&str> for Param {
    fn from(s: &str) -> Self {
        Param::Text(s.to_owned())
    }
}

impl From<String> for Param {
    fn from(s: String) -> Self {
        Param::Text(s)
    }
}

impl From<i64> for Param {
    fn from(i: i64) -> Self {
        Param::Int(i)
    }
}

/// The conditions of a page, each with its parameters.
#[derive(Default)]
pub(super) struct Page {
    conditions: String,
    params: Vec<Param>,
}

impl Page {
    /// `$n` for a new parameter.
    fn param(&mut self, value: impl Into<Param>) -> String {
        self.params.push(value.into());
        format!("${}", self.params.len())
    }

    /// Adds `<column_op> <value>`, e.g. `org_id =`, when there is a value.
    pub(super) fn and(&mut self, column_op: &str, value: Option<impl Into<Param>>) {
        if let Some(value) = value {
            let p = self.param(value);
            self.conditions += &format!(" AND {column_op} {p}");
        }
    }

    /// Only rows before the cursor `(time, tie)` in the order of the page.
    pub(super) fn before(&mut self, time: &str, tie: &str, at: i64, id: impl Into<Param>) {
        let (a, b, c) = (self.param(at), self.param(at), self.param(id));
        self.conditions += &format!(" AND ({time} < {a} OR ({time} = {b} AND {tie} < {c}))");
    }

    /// At most `limit` rows of `SELECT columns FROM table` that meet the
    /// conditions, newest first by `(time, tie)`.
    pub(super) async fn fetch(
        mut self,
        pool: &AnyPool,
        columns: &str,
        table: &str,
        (time, tie): (&str, &str),
        limit: u32,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let limit = self.param(i64::from(limit));
        let sql = format!(
            "SELECT {columns} FROM {table} WHERE 1 = 1{} ORDER BY {time} DESC, {tie} DESC LIMIT {limit}",
            self.conditions
        );
        let mut q = sqlx::query(&sql);
        for p in self.params {
            q = match p {
                Param::Text(s) => q.bind(s),
                Param::Int(i) => q.bind(i),
            };
        }
        q.fetch_all(pool).await
    }
}
