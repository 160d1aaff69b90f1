//! Pieces of statements whose text never varies, so that a connection prepares them
//! once and then only binds. diesel caches the prepared statements of the queries it
//! builds, except `ON CONFLICT ... DO UPDATE` and `UPDATE`, whose text may depend on
//! which fields are set: the hot writes (the user upsert, the updates) are therefore
//! written as their own query types, with one text whatever the input.

use diesel::backend::Backend;
use diesel::query_builder::AstPass;
use diesel::serialize::ToSql;
use diesel::sql_types::{Bool, HasSqlType, Nullable, SqlType};
use diesel::QueryResult;

/// A change to one column, or none, in a form every statement text shares.
pub(crate) struct ColumnChange<T> {
    set: bool,
    value: Option<T>,
}

impl<T> ColumnChange<T> {
    /// `Some` sets the column to the value; `None` leaves it as it is.
    pub(crate) fn new(change: Option<T>) -> Self {
        ColumnChange {
            set: change.is_some(),
            value: change,
        }
    }

    /// For a nullable column: `Some(None)` sets it to NULL.
    pub(crate) fn nullable(change: Option<Option<T>>) -> Self {
        ColumnChange {
            set: change.is_some(),
            value: change.flatten(),
        }
    }

    /// `"column" = CASE WHEN <set> THEN <value> ELSE "column" END, `: the column keeps
    /// its value unless the change sets it, with the same text either way.
    pub(crate) fn push<'b, DB, ST>(
        &'b self,
        column: &str,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()>
    where
        DB: Backend + HasSqlType<ST> + HasSqlType<Bool>,
        ST: SqlType,
        Option<T>: ToSql<Nullable<ST>, DB>,
        bool: ToSql<Bool, DB>,
    {
        out.push_identifier(column)?;
        out.push_sql(" = CASE WHEN ");
        out.push_bind_param::<Bool, _>(&self.set)?;
        out.push_sql(" THEN ");
        out.push_bind_param::<Nullable<ST>, _>(&self.value)?;
        out.push_sql(" ELSE ");
        out.push_identifier(column)?;
        out.push_sql(" END, ");
        Ok(())
    }
}

/// The impls every statement type of this kind shares: a static statement-cache key
/// (the text never varies, so the type identifies it), the SQL types of the row it
/// returns, and `RunQueryDsl`. Its `QueryFragment` impl writes the text.
macro_rules! stable_statement {
    ($name:ident<$($lifetime:lifetime),* $(; $param:ident)*>, $key:ident, returns $sql:ty) => {
        /// The statement cache's key for the statement type of the same name.
        pub(crate) struct $key;

        impl<$($lifetime,)* $($param),*> diesel::query_builder::QueryId
            for $name<$($lifetime,)* $($param),*>
        {
            type QueryId = $key;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl<$($lifetime,)* $($param),*> diesel::query_builder::Query
            for $name<$($lifetime,)* $($param),*>
        {
            type SqlType = $sql;
        }

        impl<$($lifetime,)* $($param,)* Conn> diesel::RunQueryDsl<Conn>
            for $name<$($lifetime,)* $($param),*>
        {
        }
    };
}
pub(crate) use stable_statement;
