diesel::table! {
    use diesel::sql_types::{Nullable, Varchar};
    use crate::sql_types::{ExperienceLevel, TimestampWithTimeZone, Uuid};

    /// A job a user prepares for; owned by one user.
    job_info (id) {
        id -> Uuid,
        title -> Nullable<Varchar>,
        name -> Varchar,
        #[sql_name = "experienceLevel"]
        experience_level -> ExperienceLevel,
        description -> Varchar,
        #[sql_name = "userId"]
        user_id -> Varchar,
        #[sql_name = "createdAt"]
        created_at -> TimestampWithTimeZone,
        #[sql_name = "updatedAt"]
        updated_at -> TimestampWithTimeZone,
    }
}
