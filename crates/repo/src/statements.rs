//! Statements whose text never varies, so that a connection prepares them once and then
//! only binds. diesel caches the prepared statements of the queries it builds, except
//! `ON CONFLICT ... DO UPDATE` and `UPDATE`, whose text may depend on which fields are
//! set: the hot writes (the user upsert, the updates) are therefore written as their own
//! query types, with one text whatever the input. Column and table names come from
//! `table!`, never spelled here.
//!
//! The statement cache keys a statement by its type's `QueryId`, so the key of each
//! type here is built from every type that shapes its text (table, columns, filter,
//! returned columns): two statements of different text never share a key.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::expression::Expression;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{Bool, HasSqlType, IntoNullable};
use diesel::{Column, QueryResult, RunQueryDsl};

/// The unquoted database name of a column, as `table!` declares it.
pub(crate) fn sql_name<C: Column>(_column: C) -> &'static str {
    C::NAME
}

/// A change to the column `C`, or none, written
/// `"column" = CASE WHEN <set> THEN <value> ELSE "column" END`: the column keeps its
/// value unless the change sets it, with the same text either way.
pub(crate) struct ColumnChange<C, T> {
    set: bool,
    value: Option<T>,
    column: PhantomData<C>,
}

impl<C: Column, T> ColumnChange<C, T> {
    /// `Some` sets the column to the value; `None` leaves it as it is.
    pub(crate) fn new(_column: C, change: Option<T>) -> Self {
        ColumnChange {
            set: change.is_some(),
            value: change,
            column: PhantomData,
        }
    }

    /// For a nullable column: `Some(None)` sets it to NULL.
    pub(crate) fn nullable(_column: C, change: Option<Option<T>>) -> Self {
        ColumnChange {
            set: change.is_some(),
            value: change.flatten(),
            column: PhantomData,
        }
    }
}

/// The value is bound as the column's type made nullable: a NULL bind is how an unset
/// change keeps the same text.
type NullableOf<C> = <<C as Expression>::SqlType as IntoNullable>::Nullable;

impl<DB, C, T> QueryFragment<DB> for ColumnChange<C, T>
where
    DB: Backend + HasSqlType<Bool> + HasSqlType<NullableOf<C>>,
    C: Column,
    C::SqlType: IntoNullable,
    Option<T>: ToSql<NullableOf<C>, DB>,
    bool: ToSql<Bool, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_identifier(C::NAME)?;
        out.push_sql(" = CASE WHEN ");
        out.push_bind_param::<Bool, _>(&self.set)?;
        out.push_sql(" THEN ");
        out.push_bind_param::<NullableOf<C>, _>(&self.value)?;
        out.push_sql(" ELSE ");
        out.push_identifier(C::NAME)?;
        out.push_sql(" END");
        Ok(())
    }
}

// The text depends on the column alone, not on the value's Rust type.
impl<C: Column + 'static, T> QueryId for ColumnChange<C, T> {
    type QueryId = ColumnChange<C, ()>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// `"column" = <value>`, always set (the `updatedAt` of an update).
pub(crate) struct ColumnValue<C, T> {
    value: T,
    column: PhantomData<C>,
}

impl<C: Column, T> ColumnValue<C, T> {
    pub(crate) fn new(_column: C, value: T) -> Self {
        ColumnValue {
            value,
            column: PhantomData,
        }
    }
}

impl<DB, C, T> QueryFragment<DB> for ColumnValue<C, T>
where
    DB: Backend + HasSqlType<C::SqlType>,
    C: Column,
    T: ToSql<C::SqlType, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_identifier(C::NAME)?;
        out.push_sql(" = ");
        out.push_bind_param::<C::SqlType, _>(&self.value)
    }
}

impl<C: Column + 'static, T> QueryId for ColumnValue<C, T> {
    type QueryId = ColumnValue<C, ()>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// `UPDATE <table> SET <set> WHERE <filter> RETURNING <returning>`, where `set` is a
/// tuple of [`ColumnChange`]s and [`ColumnValue`]s (diesel writes a tuple comma
/// separated) and `returning` a column or a tuple of columns.
///
/// Its key is made of the keys of all four parts (`derive(QueryId)`), so an update
/// with another filter type is another statement; a filter whose key is not static
/// (none here) makes the update uncached, never wrongly cached.
#[derive(QueryId)]
pub(crate) struct StableUpdate<Tab, Set, F, Ret> {
    pub(crate) table: Tab,
    pub(crate) set: Set,
    pub(crate) filter: F,
    pub(crate) returning: Ret,
}

impl<DB, Tab, Set, F, Ret> QueryFragment<DB> for StableUpdate<Tab, Set, F, Ret>
where
    DB: Backend,
    Tab: QueryFragment<DB>,
    Set: QueryFragment<DB>,
    F: QueryFragment<DB>,
    Ret: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        self.table.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        self.set.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())?;
        out.push_sql(" RETURNING ");
        self.returning.walk_ast(out.reborrow())
    }
}

impl<Tab, Set, F, Ret: Expression> Query for StableUpdate<Tab, Set, F, Ret> {
    type SqlType = Ret::SqlType;
}

impl<Tab, Set, F, Ret, Conn> RunQueryDsl<Conn> for StableUpdate<Tab, Set, F, Ret> {}

#[cfg(test)]
mod tests {
    use std::any::TypeId;

    use diesel::prelude::*;
    use diesel::query_builder::QueryId;
    use jobprep_schema::questions;

    use super::{ColumnChange, ColumnValue, StableUpdate};
    use crate::types::{QuestionDifficulty, QuestionId, Timestamp};

    fn key<Q: QueryId>(_: &Q) -> (TypeId, bool) {
        (TypeId::of::<Q::QueryId>(), Q::HAS_STATIC_QUERY_ID)
    }

    fn update<'a, F: QueryId + 'a>(text: Option<&'a str>, filter: F) -> impl QueryId + 'a {
        StableUpdate {
            table: questions::table,
            set: (
                ColumnChange::new(questions::text, text),
                ColumnChange::new(questions::difficulty, None::<QuestionDifficulty>),
                ColumnValue::new(questions::updated_at, Timestamp::now()),
            ),
            filter,
            returning: (questions::id, questions::job_info_id),
        }
    }

    #[test]
    fn the_key_is_static_and_the_same_whatever_is_set() {
        let id = QuestionId::generate();
        let one = key(&update(Some("Why?"), questions::id.eq(id)));
        let other = key(&update(None, questions::id.eq(QuestionId::generate())));
        assert!(one.1, "the statement is cached");
        assert_eq!(one, other);
    }

    #[test]
    fn another_filter_type_is_another_key() {
        let id = QuestionId::generate();
        let by_id = key(&update(None, questions::id.eq(id)));
        let by_text = key(&update(None, questions::text.eq("Why?")));
        let by_both = key(&update(
            None,
            questions::id.eq(id).and(questions::text.eq("Why?")),
        ));
        assert_ne!(by_id.0, by_text.0);
        assert_ne!(by_id.0, by_both.0);
        assert_ne!(by_text.0, by_both.0);
    }
}
