//! Bounded lists: keyset pagination in each list's own order.
//!
//! A page is at most [`PageRequest::limit`] rows; its [`Page::next`] cursor is the
//! sort key (timestamp and id) of its last row, and the next page starts after that
//! key. Inserts and deletes elsewhere in the list never shift a page (no `OFFSET`):
//! every row present when the first page is read, and still unchanged when its page is
//! reached, is returned exactly once. A row *updated* meanwhile moves in a list ordered
//! by `updatedAt` and may then be seen twice or not at all, as in any keyset scheme.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::types::Timestamp;

/// Narrows a boxed list query to one page: the rows after the page's cursor in the
/// list's order (`$at` then `$id`, both `desc` or both `asc`), at most the rows
/// [`PageRequest::rows_to_load`] asks for. `$rows` is that count (`None`: the whole
/// list). The cursor's id is made an `$Id` again.
macro_rules! paged {
    ($query:expr, $page:expr, $rows:expr, $at:expr, $id:expr, $Id:ty, $order:ident) => {{
        let mut query = $query;
        if let Some(rows) = $rows {
            query = query.limit(rows);
        }
        if let Some(after) = $page.and_then(|p: &$crate::page::PageRequest| p.after) {
            let (at, id) = (after.at(), <$Id>::from_uuid(after.id()));
            query = $crate::page::paged!(@after query, $at, $id, at, id, $order);
        }
        query
    }};
    (@after $query:ident, $at:expr, $id:expr, $a:ident, $i:ident, desc) => {
        $query.filter($at.lt($a).or($at.eq($a).and($id.lt($i))))
    };
    (@after $query:ident, $at:expr, $id:expr, $a:ident, $i:ident, asc) => {
        $query.filter($at.gt($a).or($at.eq($a).and($id.gt($i))))
    };
}
pub(crate) use paged;

/// The most rows one page may ask for.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Which page of a list to read.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageRequest {
    /// How many rows at most: 1 to [`MAX_PAGE_SIZE`] (`InvalidInput` for `limit`
    /// otherwise).
    pub limit: u32,
    /// The previous page's [`Page::next`]; `None` for the first page.
    #[serde(default)]
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// The first `limit` rows.
    pub fn first(limit: u32) -> Self {
        PageRequest { limit, after: None }
    }

    /// The `limit` rows after `cursor`.
    pub fn after(limit: u32, cursor: Cursor) -> Self {
        PageRequest {
            limit,
            after: Some(cursor),
        }
    }

    /// How many rows to load: one more than the page, to know whether another follows.
    pub(crate) fn rows_to_load(&self) -> Result<i64> {
        if self.limit == 0 || self.limit > MAX_PAGE_SIZE {
            return Err(Error::invalid(
                "limit",
                format!("must be from 1 to {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(i64::from(self.limit) + 1)
    }
}

/// One page of a list, in the list's order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Cuts `rows` (loaded with [`PageRequest::rows_to_load`]) to the page, with a
    /// cursor when more rows follow.
    pub(crate) fn from_rows(
        mut rows: Vec<T>,
        request: &PageRequest,
        key: impl Fn(&T) -> Cursor,
    ) -> Self {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more { rows.last().map(key) } else { None };
        Page { items: rows, next }
    }
}

/// Where a page ended, as opaque text for clients to hand back (`Display` and
/// `FromStr`; serialized as that text). Text that is not a cursor is
/// `InvalidInput` for `cursor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    at: DateTime<Utc>,
    id: uuid::Uuid,
}

impl Cursor {
    pub(crate) fn new(at: DateTime<Utc>, id: uuid::Uuid) -> Self {
        Cursor { at, id }
    }

    pub(crate) fn at(&self) -> Timestamp {
        Timestamp::truncated(self.at)
    }

    pub(crate) fn id(&self) -> uuid::Uuid {
        self.id
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.at.timestamp_micros(), self.id.simple())
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid = || Error::invalid("cursor", "is not a cursor this list returned");
        let (micros, id) = text.split_once('_').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        let at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
        let id = uuid::Uuid::try_parse(id).map_err(|_| invalid())?;
        Ok(Cursor { at, id })
    }
}

impl serde::Serialize for Cursor {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
