//! OpenID Shared Signals event streams: one row per stream a receiver
//! made through the stream-management API, with its place in the audit
//! log in `outbox_cursors` (same id; kind `ssf` for push streams, which
//! the worker delivers, `ssf-poll` for poll streams, which the receiver
//! drains). One stream per audience (`aud` is unique).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SsfStreams {
    Table,
    Id,
    Audience,
    Issuer,
    Description,
    DeliveryMethod,
    EndpointUrl,
    AuthorizationHeader,
    EventsRequested,
    EventsDelivered,
    Status,
    StatusReason,
    SubjectsListed,
    Subjects,
    CreatedByKey,
    CreatedAt,
    UpdatedAt,
}

const AUDIENCE_INDEX: &str = "ux_ssf_streams_audience";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SsfStreams::Table)
                    .col(
                        ColumnDef::new(SsfStreams::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SsfStreams::Audience)
                            .string_len(512)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SsfStreams::Issuer)
                            .string_len(512)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SsfStreams::Description)
                            .string_len(256)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(SsfStreams::DeliveryMethod)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SsfStreams::EndpointUrl)
                            .string_len(2048)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(SsfStreams::AuthorizationHeader)
                            .string_len(1024)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(SsfStreams::EventsRequested)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SsfStreams::EventsDelivered)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SsfStreams::Status).string_len(16).not_null())
                    .col(
                        ColumnDef::new(SsfStreams::StatusReason)
                            .string_len(512)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(SsfStreams::SubjectsListed)
                            .boolean()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SsfStreams::Subjects).text().not_null())
                    .col(ColumnDef::new(SsfStreams::CreatedByKey).uuid().null())
                    .col(
                        ColumnDef::new(SsfStreams::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SsfStreams::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(AUDIENCE_INDEX)
                    .table(SsfStreams::Table)
                    .col(SsfStreams::Audience)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SsfStreams::Table).to_owned())
            .await
    }
}
