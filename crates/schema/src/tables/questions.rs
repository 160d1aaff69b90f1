diesel::table! {
    use diesel::sql_types::Varchar;
    use crate::sql_types::{QuestionDifficulty, TimestampWithTimeZone, Uuid};

    /// A practice question generated for a job info.
    questions (id) {
        id -> Uuid,
        #[sql_name = "jobInfoId"]
        job_info_id -> Uuid,
        text -> Varchar,
        difficulty -> QuestionDifficulty,
        #[sql_name = "createdAt"]
        created_at -> TimestampWithTimeZone,
        #[sql_name = "updatedAt"]
        updated_at -> TimestampWithTimeZone,
    }
}
