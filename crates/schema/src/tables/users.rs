diesel::table! {
    use diesel::sql_types::{Nullable, Varchar};
    use crate::sql_types::TimestampWithTimeZone;

    /// People, keyed by the id the auth provider issued (`user_2abc...`).
    users (id) {
        id -> Varchar,
        name -> Varchar,
        email -> Varchar,
        #[sql_name = "imageUrl"]
        image_url -> Nullable<Varchar>,
        #[sql_name = "createdAt"]
        created_at -> TimestampWithTimeZone,
        #[sql_name = "updatedAt"]
        updated_at -> TimestampWithTimeZone,
    }
}
