//! The contract's enums in the store's columns. Postgres keeps them as enum types (`job_kind`, `job_state`,
//! `run_state`), SQLite as text; both hold the name `as_str` spells (see [`sensgrid_proto::names`]), so this
//! is where the stores bind and read them, as [`Stored`].

use sensgrid_proto::names::UnknownName;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgTypeInfo, Postgres};
use sqlx::sqlite::{Sqlite, SqliteTypeInfo};
use sqlx::{Database, Decode, Encode, Type};

use super::{JobKind, JobState, RunState};

/// A contract enum the store keeps in a column.
pub(crate) trait StoredEnum: Copy + Send + Sync + 'static {
    /// The Postgres enum type of its columns.
    const PG_TYPE: &'static str;

    /// The name its column holds.
    fn name(self) -> &'static str;

    /// The value a column's name stands for.
    fn from_name(name: &str) -> Result<Self, UnknownName>;
}

macro_rules! stored_enum {
    ($enum:ty, $pg_type:literal) => {
        impl StoredEnum for $enum {
            const PG_TYPE: &'static str = $pg_type;

            fn name(self) -> &'static str {
                self.as_str()
            }

            fn from_name(name: &str) -> Result<Self, UnknownName> {
                Self::parse(name)
            }
        }
    };
}

stored_enum!(JobKind, "job_kind");
stored_enum!(JobState, "job_state");
stored_enum!(RunState, "run_state");

/// A contract enum as a query binds or reads it: `.bind(Stored(JobState::Queued))`,
/// `row.try_get::<Stored<JobState>, _>("state")`. Reading a name the enum does not have is the query's error,
/// naming the column's type and the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stored<T>(pub T);

impl<T: StoredEnum> Type<Postgres> for Stored<T> {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name(T::PG_TYPE)
    }
}

impl<T: StoredEnum> Type<Sqlite> for Stored<T> {
    fn type_info() -> SqliteTypeInfo {
        <str as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <&str as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q, T: StoredEnum, DB: Database> Encode<'q, DB> for Stored<T>
where
    &'q str: Encode<'q, DB>,
{
    fn encode_by_ref(&self, buf: &mut <DB as Database>::ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
        <&'q str as Encode<'q, DB>>::encode(self.0.name(), buf)
    }
}

impl<'r, T: StoredEnum, DB: Database> Decode<'r, DB> for Stored<T>
where
    &'r str: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let name = <&'r str as Decode<'r, DB>>::decode(value)?;
        T::from_name(name)
            .map(Stored)
            .map_err(|unknown| format!("{}: {unknown}", T::PG_TYPE).into())
    }
}
