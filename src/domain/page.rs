//! Pagination and sorting of admin lists (API.md 3.13-3.14).
//!
//! Query values are parsed the way upstream's Go code parses them (`strconv.ParseUint`,
//! `strings.Split(value, " ")`), so clients see the same messages; `per_page=0`, which
//! crashed upstream with a division by zero, is refused, and large pages are capped.

use std::fmt;

/// `per_page` when the query does not give one.
pub const DEFAULT_PER_PAGE: u64 = 50;

/// The largest page served; larger `per_page` values are lowered to it (and the `Link`
/// header then names the page size actually used).
pub const MAX_PER_PAGE: u64 = 1000;

/// Why `page` or `per_page` was refused; the message follows `Bad Pagination Parameters: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// Not an unsigned decimal integer (Go's `strconv.ParseUint` wording).
    #[error("strconv.ParseUint: parsing {}: invalid syntax", go_quote(.0))]
    Syntax(String),
    /// Larger than 2^64 - 1.
    #[error("strconv.ParseUint: parsing {}: value out of range", go_quote(.0))]
    Range(String),
    /// `per_page=0`.
    #[error("per_page must be at least 1")]
    ZeroPerPage,
}

/// Quotes like Go's `strconv.Quote` for the printable strings query values usually are.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn parse_uint(v: &str) -> Result<u64, PageError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PageError::Syntax(v.to_owned()));
    }
    v.parse::<u64>().map_err(|_| PageError::Range(v.to_owned()))
}

/// A requested page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    /// The page number as requested (`0` is served as page 1, but the `Link` header uses
    /// the raw value, as upstream does).
    pub page: u64,
    /// Rows per page, at most [`MAX_PER_PAGE`].
    pub per_page: u64,
    /// Whether `per_page` was lowered to [`MAX_PER_PAGE`].
    pub capped: bool,
}

impl Default for Pagination {
    fn default() -> Self {
        Self { page: 1, per_page: DEFAULT_PER_PAGE, capped: false }
    }
}

impl Pagination {
    /// Parses the `page` and `per_page` query values (absent or empty: the defaults).
    ///
    /// # Errors
    /// [`PageError`] for a value that is not an unsigned integer, or `per_page=0`.
    pub fn parse(page: Option<&str>, per_page: Option<&str>) -> Result<Self, PageError> {
        let mut p = Self::default();
        if let Some(v) = page.filter(|v| !v.is_empty()) {
            p.page = parse_uint(v)?;
        }
        if let Some(v) = per_page.filter(|v| !v.is_empty()) {
            p.per_page = parse_uint(v)?;
        }
        if p.per_page == 0 {
            return Err(PageError::ZeroPerPage);
        }
        if p.per_page > MAX_PER_PAGE {
            p.per_page = MAX_PER_PAGE;
            p.capped = true;
        }
        Ok(p)
    }

    /// Rows to skip.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.page.max(1).saturating_sub(1).saturating_mul(self.per_page)
    }

    /// Rows to return.
    #[must_use]
    pub fn limit(&self) -> u64 {
        self.per_page
    }

    /// `ceil(total / per_page)`: 0 when there are no rows.
    #[must_use]
    pub fn total_pages(&self, total: u64) -> u64 {
        total.div_ceil(self.per_page.max(1))
    }
}

/// Order of a list by creation time; ties are always broken by id in the same direction,
/// so that consecutive pages never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDirection {
    /// Oldest first.
    Asc,
    /// Newest first (the default).
    #[default]
    Desc,
}

/// Why a `sort` value was refused; the message follows `Bad Sort Parameters: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SortError {
    /// A field other than `created_at`.
    #[error("bad field for sort '{0}'")]
    Field(String),
    /// A direction other than `asc`/`desc`.
    #[error("bad direction for sort '{0}', only 'asc' and 'desc' allowed")]
    Direction(String),
}

/// Parses every `sort` value (`<field>` or `<field> <dir>`). Only `created_at` may be
/// sorted on, so the first value decides the order; later ones are still validated.
///
/// # Errors
/// [`SortError`] naming the first bad field or direction.
pub fn parse_sort<S: AsRef<str>>(values: &[S]) -> Result<SortDirection, SortError> {
    let mut order = None;
    for value in values {
        let parts: Vec<&str> = value.as_ref().split(' ').collect();
        let field = parts.first().copied().unwrap_or_default();
        if field != "created_at" {
            return Err(SortError::Field(field.to_owned()));
        }
        // Upstream reads a direction only from exactly two parts; more means the default.
        let dir = match parts.as_slice() {
            [_, d] => match d.to_lowercase().as_str() {
                "asc" => SortDirection::Asc,
                "desc" => SortDirection::Desc,
                _ => return Err(SortError::Direction((*d).to_owned())),
            },
            _ => SortDirection::Desc,
        };
        order.get_or_insert(dir);
    }
    Ok(order.unwrap_or_default())
}

/// One page of a list and the number of rows matching overall.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Rows matching the filter, across all pages.
    pub total: u64,
}

impl fmt::Display for SortDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Asc => "ASC",
            Self::Desc => "DESC",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_go_parse_errors() {
        assert_eq!(Pagination::parse(None, None).unwrap(), Pagination { page: 1, per_page: 50, capped: false });
        assert_eq!(Pagination::parse(Some(""), Some("")).unwrap().per_page, 50);
        assert_eq!(Pagination::parse(Some("3"), Some("10")).unwrap().offset(), 20);
        assert_eq!(Pagination::parse(Some("abc"), None).unwrap_err().to_string(), r#"strconv.ParseUint: parsing "abc": invalid syntax"#);
        assert_eq!(Pagination::parse(None, Some("-1")).unwrap_err().to_string(), r#"strconv.ParseUint: parsing "-1": invalid syntax"#);
        assert_eq!(Pagination::parse(Some("+1"), None).unwrap_err(), PageError::Syntax("+1".into()));
        assert_eq!(
            Pagination::parse(Some("99999999999999999999"), None).unwrap_err().to_string(),
            r#"strconv.ParseUint: parsing "99999999999999999999": value out of range"#
        );
        assert_eq!(Pagination::parse(None, Some("0")).unwrap_err(), PageError::ZeroPerPage);
    }

    #[test]
    fn page_zero_is_served_as_page_one_and_large_pages_are_capped() {
        let p = Pagination::parse(Some("0"), Some("5")).unwrap();
        assert_eq!((p.page, p.offset()), (0, 0));
        let p = Pagination::parse(None, Some("5000")).unwrap();
        assert_eq!((p.per_page, p.capped), (MAX_PER_PAGE, true));
        let p = Pagination::parse(Some(&u64::MAX.to_string()), Some("1000")).unwrap();
        assert_eq!(p.offset(), u64::MAX);
    }

    #[test]
    fn total_pages_rounds_up() {
        let p = Pagination { page: 1, per_page: 2, capped: false };
        assert_eq!([p.total_pages(0), p.total_pages(1), p.total_pages(2), p.total_pages(3)], [0, 1, 1, 2]);
    }

    #[test]
    fn sort_values_like_upstream() {
        assert_eq!(parse_sort::<&str>(&[]), Ok(SortDirection::Desc));
        assert_eq!(parse_sort(&["created_at"]), Ok(SortDirection::Desc));
        assert_eq!(parse_sort(&["created_at ASC"]), Ok(SortDirection::Asc));
        assert_eq!(parse_sort(&["created_at asc extra"]), Ok(SortDirection::Desc));
        assert_eq!(parse_sort(&["created_at asc", "created_at desc"]), Ok(SortDirection::Asc));
        assert_eq!(parse_sort(&["email"]).unwrap_err().to_string(), "bad field for sort 'email'");
        assert_eq!(parse_sort(&[""]).unwrap_err().to_string(), "bad field for sort ''");
        assert_eq!(parse_sort(&["created_at up"]).unwrap_err().to_string(), "bad direction for sort 'up', only 'asc' and 'desc' allowed");
        assert!(parse_sort(&["created_at", "id"]).is_err());
    }
}
