//! For services whose domain is not built yet: a real process (health, readiness, metrics,
//! migrations) whose `IntegrationService` answers every call with `UNIMPLEMENTED` and says so,
//! except `GetStatus`, which reports the integration `disabled` with the reason (the dashboard
//! shows it like any other status, with no numbers).
use bac_proto::integration::v1::{
    integration_service_server::{IntegrationService, IntegrationServiceServer},
    BeginAuthorizationRequest, BeginAuthorizationResponse, CompleteAuthorizationRequest,
    CompleteAuthorizationResponse, Conflict, Connection, CreateConnectionRequest,
    DeleteConnectionRequest, DeleteConnectionResponse, FieldMapping, GetConflictRequest,
    GetConnectionRequest, GetMappingRequest, GetStatusRequest, IngestChangesRequest,
    IngestChangesResponse, IntegrationStatus, ListConflictsRequest, ListConflictsResponse,
    ListConnectionsRequest, ListConnectionsResponse, ListParkedEventsRequest,
    ListParkedEventsResponse, ListSyncRunsRequest, ListSyncRunsResponse, ListSyncSettingsRequest,
    ListSyncSettingsResponse, ParkedEvent, ParkedEventRequest, PreviewMappingRequest,
    PreviewMappingResponse, PutMappingRequest, ResolveConflictRequest, SyncSettings,
    TestConnectionRequest, TestConnectionResponse, TestSettingsRequest, TriggerSyncRequest,
    TriggerSyncResponse, UpdateConnectionRequest, UpdateConnectionResponse,
    UpdateSyncSettingsRequest, WebhookRequest, WebhookResponse,
};
use tonic::{service::Routes, Request, Response, Status};

use crate::{
    connections, error::ErrorCode, Config, Running, Runtime, ServiceError, ServiceKind, ServiceSpec,
};

#[derive(Clone, Copy)]
pub struct NotBuilt(pub ServiceKind);

impl NotBuilt {
    fn status(&self) -> Status {
        ServiceError::new(
            self.0.key(),
            ErrorCode::NotImplemented,
            format!("the {} integration is not built yet", self.0.key()),
        )
        .suggest("See the status table in the README for what each service does today")
        .into_status()
    }
}

/// Starts a service of this kind that serves only health and `UNIMPLEMENTED`.
pub async fn run(kind: ServiceKind, config: Config) -> anyhow::Result<Running> {
    static MIGRATIONS: &[crate::db::Migration] =
        &[connections::MIGRATION, connections::NOTIFY_MIGRATION];
    let spec = ServiceSpec {
        kind,
        migrations: MIGRATIONS,
        topics: Vec::new(),
        grpc_services: vec!["bac.integration.v1.IntegrationService"],
    };
    let rt = Runtime::start(config, spec).await?;
    let routes = Routes::new(IntegrationServiceServer::new(NotBuilt(kind)));
    rt.launch(routes, None).await
}

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl IntegrationService for NotBuilt {
    async fn begin_authorization(
        &self,
        _: Request<BeginAuthorizationRequest>,
    ) -> R<BeginAuthorizationResponse> {
        Err(self.status())
    }
    async fn complete_authorization(
        &self,
        _: Request<CompleteAuthorizationRequest>,
    ) -> R<CompleteAuthorizationResponse> {
        Err(self.status())
    }
    async fn create_connection(&self, _: Request<CreateConnectionRequest>) -> R<Connection> {
        Err(self.status())
    }
    async fn get_connection(&self, _: Request<GetConnectionRequest>) -> R<Connection> {
        Err(self.status())
    }
    async fn list_connections(
        &self,
        _: Request<ListConnectionsRequest>,
    ) -> R<ListConnectionsResponse> {
        Err(self.status())
    }
    async fn update_connection(
        &self,
        _: Request<UpdateConnectionRequest>,
    ) -> R<UpdateConnectionResponse> {
        Err(self.status())
    }
    async fn delete_connection(
        &self,
        _: Request<DeleteConnectionRequest>,
    ) -> R<DeleteConnectionResponse> {
        Err(self.status())
    }
    async fn test_connection(
        &self,
        _: Request<TestConnectionRequest>,
    ) -> R<TestConnectionResponse> {
        Err(self.status())
    }
    async fn test_settings(&self, _: Request<TestSettingsRequest>) -> R<TestConnectionResponse> {
        Err(self.status())
    }
    async fn trigger_sync(&self, _: Request<TriggerSyncRequest>) -> R<TriggerSyncResponse> {
        Err(self.status())
    }
    async fn get_status(&self, _: Request<GetStatusRequest>) -> R<IntegrationStatus> {
        Ok(Response::new(IntegrationStatus {
            integration: self.0.key().to_string(),
            status: "disabled".into(),
            reason: format!(
                "the {} integration is not built yet (the service runs but has no domain)",
                self.0.key()
            ),
            ..Default::default()
        }))
    }
    async fn list_sync_runs(&self, _: Request<ListSyncRunsRequest>) -> R<ListSyncRunsResponse> {
        Err(self.status())
    }
    async fn list_conflicts(&self, _: Request<ListConflictsRequest>) -> R<ListConflictsResponse> {
        Err(self.status())
    }
    async fn resolve_conflict(&self, _: Request<ResolveConflictRequest>) -> R<Conflict> {
        Err(self.status())
    }
    async fn get_conflict(&self, _: Request<GetConflictRequest>) -> R<Conflict> {
        Err(self.status())
    }
    async fn list_sync_settings(
        &self,
        _: Request<ListSyncSettingsRequest>,
    ) -> R<ListSyncSettingsResponse> {
        Err(self.status())
    }
    async fn update_sync_settings(&self, _: Request<UpdateSyncSettingsRequest>) -> R<SyncSettings> {
        Err(self.status())
    }
    async fn get_mapping(&self, _: Request<GetMappingRequest>) -> R<FieldMapping> {
        Err(self.status())
    }
    async fn put_mapping(&self, _: Request<PutMappingRequest>) -> R<FieldMapping> {
        Err(self.status())
    }
    async fn preview_mapping(
        &self,
        _: Request<PreviewMappingRequest>,
    ) -> R<PreviewMappingResponse> {
        Err(self.status())
    }
    async fn ingest_changes(&self, _: Request<IngestChangesRequest>) -> R<IngestChangesResponse> {
        Err(self.status())
    }
    async fn handle_webhook(&self, _: Request<WebhookRequest>) -> R<WebhookResponse> {
        Err(self.status())
    }
    async fn list_parked_events(
        &self,
        _: Request<ListParkedEventsRequest>,
    ) -> R<ListParkedEventsResponse> {
        Err(self.status())
    }
    async fn retry_parked_event(&self, _: Request<ParkedEventRequest>) -> R<ParkedEvent> {
        Err(self.status())
    }
    async fn discard_parked_event(&self, _: Request<ParkedEventRequest>) -> R<ParkedEvent> {
        Err(self.status())
    }
}
