diesel::table! {
    use diesel::sql_types::{Nullable, Varchar};
    use crate::sql_types::{TimestampWithTimeZone, Uuid};

    /// A mock interview for a job info; `humeChatId` is set once the voice chat started.
    interviews (id) {
        id -> Uuid,
        #[sql_name = "jobInfoId"]
        job_info_id -> Uuid,
        duration -> Varchar,
        #[sql_name = "humeChatId"]
        hume_chat_id -> Nullable<Varchar>,
        feedback -> Nullable<Varchar>,
        #[sql_name = "createdAt"]
        created_at -> TimestampWithTimeZone,
        #[sql_name = "updatedAt"]
        updated_at -> TimestampWithTimeZone,
    }
}
