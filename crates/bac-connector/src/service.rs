//! `bac.integration.v1.IntegrationService` for any [`Connector`]: connections (settings in
//! the service's schema, secrets in Vault), their test, the status, syncs and their settings,
//! mappings, conflicts and parked events. Everything here is the same for every provider; what
//! is not is asked of the connector.
use std::{collections::HashMap, sync::Arc, time::Instant};

use bac_proto::integration::v1::{
    integration_service_server::IntegrationService, BeginAuthorizationRequest,
    BeginAuthorizationResponse, CompleteAuthorizationRequest, CompleteAuthorizationResponse,
    Conflict, Connection, CreateConnectionRequest, DeleteConnectionRequest,
    DeleteConnectionResponse, FieldMapping, GetConflictRequest, GetConnectionRequest,
    GetMappingRequest, GetStatusRequest, IngestChangesRequest, IngestChangesResponse,
    IntegrationStatus, ListConflictsRequest, ListConflictsResponse, ListConnectionsRequest,
    ListConnectionsResponse, ListParkedEventsRequest, ListParkedEventsResponse,
    ListSyncRunsRequest, ListSyncRunsResponse, ListSyncSettingsRequest, ListSyncSettingsResponse,
    ParkedEvent, ParkedEventRequest, PreviewMappingRequest, PreviewMappingResponse, PreviewResult,
    PutMappingRequest, ResolveConflictRequest, SyncSettings, TestConnectionRequest,
    TestConnectionResponse, TestSettingsRequest, TriggerSyncRequest, TriggerSyncResponse,
    UpdateConnectionRequest, UpdateConnectionResponse, UpdateSyncSettingsRequest, WebhookRequest,
    WebhookResponse,
};
use bac_runtime::{
    connections::ConnectionStore, db::Pool, outbox::parked, ErrorCode, RequestContext, ServiceError,
};
use bac_sync::SyncEngine;
use secrecy::SecretString;
use serde_json::Value;
use tonic::{Request, Response, Status};

use crate::{oauth, Calls, Connector, Grant, TokenSource};

/// The kit's `IntegrationService` for connector `C`.
pub struct IntegrationApi<C> {
    connector: Arc<C>,
    db: Pool,
    connections: ConnectionStore,
    engine: SyncEngine,
    calls: Calls,
    tokens: Option<TokenSource>,
}

impl<C> Clone for IntegrationApi<C> {
    fn clone(&self) -> Self {
        IntegrationApi {
            connector: self.connector.clone(),
            db: self.db.clone(),
            connections: self.connections.clone(),
            engine: self.engine.clone(),
            calls: self.calls.clone(),
            tokens: self.tokens.clone(),
        }
    }
}

impl<C: Connector> IntegrationApi<C> {
    pub fn new(
        connector: Arc<C>,
        db: Pool,
        connections: ConnectionStore,
        engine: SyncEngine,
        calls: Calls,
    ) -> Self {
        IntegrationApi {
            connector,
            db,
            connections,
            engine,
            calls,
            tokens: None,
        }
    }

    /// The token source OAuth codes are redeemed with (an OAuth connector's).
    pub fn with_tokens(mut self, tokens: TokenSource) -> Self {
        self.tokens = Some(tokens);
        self
    }

    fn flow(&self) -> Result<&dyn oauth::OAuthFlow, ServiceError> {
        self.connector.oauth().ok_or_else(|| {
            bad::<C>(format!(
                "{} connections are not authorised through OAuth",
                C::NAME
            ))
        })
    }

    /// A connection changed or went: the connector's caches and every cached status.
    /// Gives every entity the frequency the connection's settings ask for, if they do. The
    /// connection is saved already: a failure here is logged, not the caller's error (its next
    /// save gives the frequency again).
    async fn schedule(&self, rec: &bac_runtime::connections::ConnectionRecord) {
        let Some(frequency) = self.connector.sync_frequency(rec) else {
            return;
        };
        for entity in self.engine.entities() {
            if let Err(e) = self
                .engine
                .update_settings(
                    &rec.tenant_id,
                    &rec.id,
                    entity,
                    Some(&frequency),
                    None,
                    None,
                )
                .await
            {
                tracing::warn!(connection = %rec.id, entity, error = %e,
                    "the connection's sync frequency was not applied");
            }
        }
    }

    async fn forget(&self, id: &str) {
        self.connector.forget(id).await;
        self.calls.forget_statuses();
    }

    async fn decide_parked(
        &self,
        request: Request<ParkedEventRequest>,
        decision: parked::Decision,
    ) -> Result<Response<ParkedEvent>, Status> {
        let ctx = ctx(&request)?;
        let event = parked::decide(
            &self.db,
            C::KEY,
            &ctx.tenant_id,
            &request.get_ref().id,
            decision,
        )
        .await?;
        Ok(Response::new(event))
    }
}

fn bad<C: Connector>(msg: impl Into<String>) -> ServiceError {
    ServiceError::new(C::KEY, ErrorCode::InvalidRequest, msg)
}

fn ctx<T>(req: &Request<T>) -> Result<RequestContext, Status> {
    RequestContext::from_metadata(req.metadata())
}

fn non_empty_secrets(secrets: HashMap<String, String>) -> HashMap<String, SecretString> {
    secrets
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, SecretString::from(v)))
        .collect()
}

fn mapping_proto(
    connection_id: &str,
    entity: &str,
    version: u32,
    mapping: &bac_sync::Mapping,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> FieldMapping {
    FieldMapping {
        connection_id: connection_id.to_string(),
        entity: entity.to_string(),
        version,
        rules: serde_json::to_value(mapping)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok()),
        created_at: at.map(bac_runtime::connections::timestamp),
    }
}

#[tonic::async_trait]
impl<C: Connector> IntegrationService for IntegrationApi<C> {
    async fn begin_authorization(
        &self,
        request: Request<BeginAuthorizationRequest>,
    ) -> Result<Response<BeginAuthorizationResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let flow = self.flow()?;
        oauth::check_redirect_uri(C::KEY, &req.redirect_uri)?;
        if req.state.is_empty() || req.code_challenge.is_empty() {
            return Err(bad::<C>("state and code_challenge are required").into());
        }
        let rec = self
            .connections
            .get(&ctx.tenant_id, &req.connection_id)
            .await?;
        let auth = flow.authorization(&rec.config)?;
        let client_id = rec.setting("client_id");
        if client_id.is_empty() {
            return Err(bad::<C>("the connection has no config.client_id").into());
        }
        let url = oauth::authorize_url(
            &auth,
            client_id,
            &req.redirect_uri,
            &req.state,
            &req.code_challenge,
        )?;
        Ok(Response::new(BeginAuthorizationResponse {
            authorization_url: url,
            scopes: auth.scopes,
        }))
    }

    async fn complete_authorization(
        &self,
        request: Request<CompleteAuthorizationRequest>,
    ) -> Result<Response<CompleteAuthorizationResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let flow = self.flow()?;
        let tokens = self.tokens.as_ref().ok_or_else(|| {
            ServiceError::internal(C::KEY, "no token source to redeem codes with")
        })?;
        if req.code.is_empty() {
            return Err(bad::<C>("code is required").into());
        }
        let rec = self
            .connections
            .get(&ctx.tenant_id, &req.connection_id)
            .await?;
        let token_url = flow.token_url(&rec.config, &req.callback)?;
        let secret = self.connections.secret(&rec).await?;
        let client_secret = secret.data.get("client_secret").cloned();
        let grant = Grant::AuthorizationCode {
            token_url,
            client_id: rec.setting("client_id").to_string(),
            client_secret,
            code: SecretString::from(req.code),
            code_verifier: (!req.code_verifier.is_empty())
                .then(|| SecretString::from(req.code_verifier)),
            redirect_uri: req.redirect_uri,
        };
        let (token, refresh) = tokens.redeem(&rec, &grant).await?;
        // what is kept: the refresh token, or a token that does not expire (Slack's bot token)
        let (field, kept) = match (refresh, flow.access_token_field()) {
            (None, Some(field)) => (field, token.value.clone()),
            // its token would expire with nothing to renew it (Slack's token rotation)
            (Some(_), Some(_)) => {
                return Err(ServiceError::new(
                    C::KEY,
                    ErrorCode::InvalidRequest,
                    format!("{} gave a token that expires and a refresh token: this integration keeps the access token itself and cannot renew it", C::NAME),
                )
                .suggest("Turn token rotation off for the app, then authorise again")
                .into())
            }
            (Some(r), None) => ("refresh_token", r),
            (None, None) => return Err(tokens.no_refresh_token().into()),
        };
        let granted = oauth::granted_scopes(&token.scope);
        let mut config = rec.config.as_object().cloned().unwrap_or_default();
        config.extend(flow.learnt(&token));
        config.insert("granted_scopes".into(), serde_json::json!(granted));
        config.insert(
            "authorized_at".into(),
            serde_json::json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        );
        // The user's credentials as they stand, with the refresh token replaced; a reconnect
        // drops whatever the fleet kept beside them (an old access token, a revocation mark).
        let mut secrets: HashMap<String, SecretString> = secret
            .data
            .into_iter()
            .filter(|(k, _)| !k.starts_with(bac_runtime::connections::FLEET_FIELD_PREFIX))
            .collect();
        secrets.insert(field.into(), kept);
        let (rec, _) = self
            .connections
            .update(
                &ctx.tenant_id,
                &rec.id,
                None,
                Some(Value::Object(config)),
                Some(secrets),
                None,
            )
            .await?;
        self.forget(&rec.id).await;
        tokens.forget(&rec.tenant_id, &rec.id);
        tracing::info!(connection = %rec.id, tenant = %rec.tenant_id, scopes = ?granted, "connection authorised");
        Ok(Response::new(CompleteAuthorizationResponse {
            connection: Some(rec.to_proto(C::KEY)),
            granted_scopes: granted,
        }))
    }

    async fn create_connection(
        &self,
        request: Request<CreateConnectionRequest>,
    ) -> Result<Response<Connection>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let config = req
            .config
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        let config = self.connector.settings(&config)?;
        self.connector.secrets(&req.secrets)?;
        self.connector.admit(&config).await?;
        let name = if req.name.trim().is_empty() {
            C::NAME.to_string()
        } else {
            req.name.trim().to_string()
        };
        let secrets = non_empty_secrets(req.secrets);
        let rec = self
            .connections
            .create(&ctx.tenant_id, &req.id, &name, config, secrets)
            .await?;
        self.forget(&rec.id).await;
        self.schedule(&rec).await;
        Ok(Response::new(rec.to_proto(C::KEY)))
    }

    async fn get_connection(
        &self,
        request: Request<GetConnectionRequest>,
    ) -> Result<Response<Connection>, Status> {
        let ctx = ctx(&request)?;
        let rec = self
            .connections
            .get(&ctx.tenant_id, &request.get_ref().id)
            .await?;
        Ok(Response::new(rec.to_proto(C::KEY)))
    }

    async fn list_connections(
        &self,
        request: Request<ListConnectionsRequest>,
    ) -> Result<Response<ListConnectionsResponse>, Status> {
        let ctx = ctx(&request)?;
        let list = self.connections.list(&ctx.tenant_id).await?;
        Ok(Response::new(ListConnectionsResponse {
            connections: list.iter().map(|r| r.to_proto(C::KEY)).collect(),
        }))
    }

    async fn update_connection(
        &self,
        request: Request<UpdateConnectionRequest>,
    ) -> Result<Response<UpdateConnectionResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let config = match &req.config {
            Some(c) => Some(self.connector.settings(
                &serde_json::to_value(c).map_err(|e| ServiceError::internal(C::KEY, e))?,
            )?),
            None => None,
        };
        if let Some(c) = &config {
            self.connector.admit(c).await?;
        }
        let secrets = match req.secrets {
            Some(s) => {
                self.connector.secrets(&s.fields)?;
                Some(non_empty_secrets(s.fields))
            }
            None => None,
        };
        // A precondition that cannot be read is refused, never dropped.
        let if_unmodified_since = match req.if_unmodified_since {
            None => None,
            Some(t) => Some(
                u32::try_from(t.nanos)
                    .ok()
                    .and_then(|n| chrono::DateTime::from_timestamp(t.seconds, n))
                    .ok_or_else(|| bad::<C>("if_unmodified_since is not a valid timestamp"))?,
            ),
        };
        let name = match req.name.as_deref().map(str::trim) {
            Some("") => return Err(bad::<C>("name must not be empty").into()),
            other => other,
        };
        let (rec, changed) = self
            .connections
            .update(
                &ctx.tenant_id,
                &req.id,
                name,
                config,
                secrets,
                if_unmodified_since,
            )
            .await?;
        self.forget(&rec.id).await;
        self.schedule(&rec).await;
        Ok(Response::new(UpdateConnectionResponse {
            connection: Some(rec.to_proto(C::KEY)),
            changed_secret_fields: changed,
        }))
    }

    async fn delete_connection(
        &self,
        request: Request<DeleteConnectionRequest>,
    ) -> Result<Response<DeleteConnectionResponse>, Status> {
        let ctx = ctx(&request)?;
        let id = request.into_inner().id;
        if let Some(keeper) = self.connector.push() {
            // stop the provider's channels while the credentials to do it still exist
            if let Ok(rec) = self.connections.get(&ctx.tenant_id, &id).await {
                if let Err(e) = keeper.close_connection(&rec).await {
                    tracing::warn!(connection = %id, error = %e, "closing the connection's push channels failed");
                }
            }
        }
        self.connections.delete(&ctx.tenant_id, &id).await?;
        self.engine.forget_connection(&ctx.tenant_id, &id).await?;
        self.forget(&id).await;
        Ok(Response::new(DeleteConnectionResponse {}))
    }

    async fn test_connection(
        &self,
        request: Request<TestConnectionRequest>,
    ) -> Result<Response<TestConnectionResponse>, Status> {
        let ctx = ctx(&request)?;
        let rec = self
            .connections
            .get(&ctx.tenant_id, &request.get_ref().id)
            .await?;
        let started = Instant::now();
        let checked = self
            .calls
            .tracked(&rec, "test_connection", self.connector.check(&rec))
            .await?;
        Ok(Response::new(TestConnectionResponse {
            ok: true,
            message: checked.message,
            server_version: checked.server_version,
            latency_ms: started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32,
        }))
    }

    async fn test_settings(
        &self,
        request: Request<TestSettingsRequest>,
    ) -> Result<Response<TestConnectionResponse>, Status> {
        let ctx = ctx(&request)?;
        let config = request
            .get_ref()
            .config
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        let config = self.connector.settings(&config)?;
        self.connector.admit(&config).await?;
        let now = chrono::Utc::now();
        let rec = bac_runtime::connections::ConnectionRecord {
            id: String::new(),
            tenant_id: ctx.tenant_id.clone(),
            name: C::NAME.to_string(),
            config,
            secret_fields: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        if !self.connector.configured(&rec) {
            return Err(bad::<C>(
                "these settings need credentials: create the connection, then test it",
            )
            .into());
        }
        let started = Instant::now();
        let checked = self.connector.check(&rec).await?;
        Ok(Response::new(TestConnectionResponse {
            ok: true,
            message: checked.message,
            server_version: checked.server_version,
            latency_ms: started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32,
        }))
    }

    async fn trigger_sync(
        &self,
        request: Request<TriggerSyncRequest>,
    ) -> Result<Response<TriggerSyncResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let ids = self
            .engine
            .trigger(
                &ctx.tenant_id,
                &req.connection_id,
                &req.entity,
                &req.mode,
                "manual",
            )
            .await?;
        let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        Ok(Response::new(TriggerSyncResponse {
            sync_run_id: ids.first().cloned().unwrap_or_default(),
            sync_run_ids: ids,
        }))
    }

    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<IntegrationStatus>, Status> {
        let ctx = ctx(&request)?;
        // Dashboards poll this: a cached answer costs no query at all.
        if let Some(status) = self.calls.cached(&ctx.tenant_id) {
            return Ok(Response::new(status));
        }
        let connections = self.connections.list(&ctx.tenant_id).await?;
        let last_sync_at = self.engine.last_success(&ctx.tenant_id).await?;
        let summary = self.engine.summary(&ctx.tenant_id).await?;
        let connector = &self.connector;
        let mut advice = Vec::new();
        for c in &connections {
            advice.extend(connector.advice(c).await);
        }
        let status = self
            .calls
            .status(
                &ctx.tenant_id,
                &connections,
                |c| connector.configured(c),
                crate::calls::SyncFacts {
                    last_sync_at,
                    frequency: summary.frequency,
                    last_run_duration_ms: summary.last_run_duration_ms,
                    last_run_records: summary.last_run_records,
                },
                &advice,
            )
            .await?;
        Ok(Response::new(status))
    }

    async fn list_sync_runs(
        &self,
        request: Request<ListSyncRunsRequest>,
    ) -> Result<Response<ListSyncRunsResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let runs = self
            .engine
            .runs(&ctx.tenant_id, &req.connection_id, &req.entity, req.limit)
            .await?;
        Ok(Response::new(ListSyncRunsResponse {
            runs: runs.iter().map(|r| r.to_proto()).collect(),
        }))
    }

    async fn list_conflicts(
        &self,
        request: Request<ListConflictsRequest>,
    ) -> Result<Response<ListConflictsResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let list = self
            .engine
            .conflicts(&ctx.tenant_id, &req.connection_id, &req.status)
            .await?;
        Ok(Response::new(ListConflictsResponse {
            conflicts: list.iter().map(|c| c.to_proto()).collect(),
        }))
    }

    async fn resolve_conflict(
        &self,
        request: Request<ResolveConflictRequest>,
    ) -> Result<Response<Conflict>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let merged = req
            .merged
            .as_ref()
            .and_then(|m| serde_json::to_value(m).ok());
        let c = self
            .engine
            .resolve_conflict(
                &ctx.tenant_id,
                &req.id,
                &req.resolution,
                merged,
                &ctx.principal,
            )
            .await?;
        Ok(Response::new(c.to_proto()))
    }

    async fn get_conflict(
        &self,
        request: Request<GetConflictRequest>,
    ) -> Result<Response<Conflict>, Status> {
        let ctx = ctx(&request)?;
        let c = self
            .engine
            .conflict(&ctx.tenant_id, &request.get_ref().id)
            .await?;
        Ok(Response::new(c.to_proto()))
    }

    async fn ingest_changes(
        &self,
        request: Request<IngestChangesRequest>,
    ) -> Result<Response<IngestChangesResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        // A webhook may name the upstream's own type (Odoo's `_model`); the engine knows
        // entities.
        let entity = self.connector.webhook_entity(&req.entity).ok_or_else(|| {
            bad::<C>(format!(
                "the {} service does not sync '{}'",
                C::KEY,
                req.entity
            ))
        })?;
        let [created, updated, deleted, unchanged] = self
            .engine
            .ingest(&ctx.tenant_id, &req.connection_id, entity, &req.record_ids)
            .await?;
        Ok(Response::new(IngestChangesResponse {
            entity: entity.to_string(),
            created,
            updated,
            deleted,
            unchanged,
        }))
    }

    async fn handle_webhook(
        &self,
        request: Request<WebhookRequest>,
    ) -> Result<Response<WebhookResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let rec = self
            .connections
            .get(&ctx.tenant_id, &req.connection_id)
            .await?;
        let webhook = crate::Webhook {
            headers: req.headers,
            body: req.body,
            query: req.query,
        };
        if req.push {
            // No gateway token: only a notification of one of this connection's channels,
            // with that channel's token, gets further.
            let verified = match self.connector.push() {
                Some(keeper) => keeper.verify(&rec.id, &webhook).await,
                None => false,
            };
            if !verified {
                tracing::warn!(connection = %rec.id, "push notification refused: no channel of this connection with that token");
                return Err(ServiceError::new(
                    C::KEY,
                    ErrorCode::Unauthenticated,
                    "not a notification of this connection's push channels",
                )
                .into());
            }
        }
        let input = self.connector.webhook(&rec, &webhook).await?;
        let counts = |entity: &str, [created, updated, deleted, unchanged]: [u32; 4]| {
            serde_json::json!({"entity": entity, "created": created, "updated": updated,
                               "deleted": deleted, "unchanged": unchanged})
        };
        let answer = match input {
            crate::WebhookInput::Ids { entity, ids } => {
                let c = self
                    .engine
                    .ingest(&ctx.tenant_id, &rec.id, entity, &ids)
                    .await?;
                counts(entity, c)
            }
            crate::WebhookInput::Records { entity, records } => {
                let c = self
                    .engine
                    .ingest_records(&ctx.tenant_id, &rec.id, entity, records)
                    .await?;
                counts(entity, c)
            }
            crate::WebhookInput::Resync { entity } => {
                let runs = self
                    .engine
                    .trigger(&ctx.tenant_id, &rec.id, entity, "incremental", "webhook")
                    .await?;
                let runs: Vec<String> = runs.iter().map(|r| r.to_string()).collect();
                serde_json::json!({"entity": entity, "sync_run_ids": runs})
            }
            crate::WebhookInput::ResyncPartition { entity, partition } => {
                let run = self
                    .engine
                    .trigger_partition(&ctx.tenant_id, &rec.id, entity, &partition, "webhook")
                    .await?;
                serde_json::json!({"entity": entity, "partition": partition,
                                   "sync_run_ids": [run.to_string()]})
            }
            crate::WebhookInput::Reply {
                status,
                content_type,
                body,
            } => {
                return Ok(Response::new(WebhookResponse {
                    status: u32::from(status),
                    content_type,
                    body,
                }))
            }
        };
        Ok(Response::new(WebhookResponse {
            status: 202,
            content_type: "application/json".into(),
            body: serde_json::to_vec(&answer).map_err(|e| ServiceError::internal(C::KEY, e))?,
        }))
    }

    async fn list_sync_settings(
        &self,
        request: Request<ListSyncSettingsRequest>,
    ) -> Result<Response<ListSyncSettingsResponse>, Status> {
        let ctx = ctx(&request)?;
        let settings = self
            .engine
            .settings(&ctx.tenant_id, &request.get_ref().connection_id)
            .await?;
        Ok(Response::new(ListSyncSettingsResponse {
            settings: settings.iter().map(|s| s.to_proto()).collect(),
        }))
    }

    async fn update_sync_settings(
        &self,
        request: Request<UpdateSyncSettingsRequest>,
    ) -> Result<Response<SyncSettings>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let s = self
            .engine
            .update_settings(
                &ctx.tenant_id,
                &req.connection_id,
                &req.entity,
                req.frequency.as_deref(),
                req.conflict_strategy.as_deref(),
                req.field_owners.map(|o| o.owners.into_iter().collect()),
            )
            .await?;
        self.calls.forget_statuses();
        Ok(Response::new(s.to_proto()))
    }

    async fn get_mapping(
        &self,
        request: Request<GetMappingRequest>,
    ) -> Result<Response<FieldMapping>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        self.connections
            .get(&ctx.tenant_id, &req.connection_id)
            .await?;
        let (version, mapping, at) = self
            .engine
            .mapping(&ctx.tenant_id, &req.connection_id, &req.entity)
            .await?;
        Ok(Response::new(mapping_proto(
            &req.connection_id,
            &req.entity,
            version,
            &mapping,
            at,
        )))
    }

    async fn put_mapping(
        &self,
        request: Request<PutMappingRequest>,
    ) -> Result<Response<FieldMapping>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let rules = req
            .rules
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok())
            .ok_or_else(|| bad::<C>("rules is required"))?;
        let (version, mapping, at) = self
            .engine
            .put_mapping(
                &ctx.tenant_id,
                &req.connection_id,
                &req.entity,
                &rules,
                &ctx.principal,
            )
            .await?;
        Ok(Response::new(mapping_proto(
            &req.connection_id,
            &req.entity,
            version,
            &mapping,
            Some(at),
        )))
    }

    async fn preview_mapping(
        &self,
        request: Request<PreviewMappingRequest>,
    ) -> Result<Response<PreviewMappingResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let conn = self
            .connections
            .get(&ctx.tenant_id, &req.connection_id)
            .await?;
        let mapping = match &req.rules {
            Some(r) => {
                let v = serde_json::to_value(r).map_err(|e| ServiceError::internal(C::KEY, e))?;
                bac_sync::Mapping::parse(&v)
                    .map_err(|errs| bad::<C>(format!("invalid mapping: {}", errs.join("; "))))?
            }
            None => {
                self.engine
                    .mapping(&ctx.tenant_id, &req.connection_id, &req.entity)
                    .await?
                    .1
            }
        };
        if req.samples.len() > 100 {
            return Err(bad::<C>("at most 100 samples").into());
        }
        let samples: Vec<Value> = req
            .samples
            .iter()
            .filter_map(|s| serde_json::to_value(s).ok())
            .collect();
        let results = self
            .engine
            .preview(&conn, &req.entity, &mapping, samples)
            .await?;
        Ok(Response::new(PreviewMappingResponse {
            results: results
                .into_iter()
                .map(|(input, out)| PreviewResult {
                    input: serde_json::from_value(input).ok(),
                    output: out
                        .as_ref()
                        .ok()
                        .and_then(|o| serde_json::from_value(o.clone()).ok()),
                    error: out.err().unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn list_parked_events(
        &self,
        request: Request<ListParkedEventsRequest>,
    ) -> Result<Response<ListParkedEventsResponse>, Status> {
        let ctx = ctx(&request)?;
        let events =
            parked::list(&self.db, C::KEY, &ctx.tenant_id, request.get_ref().limit).await?;
        Ok(Response::new(ListParkedEventsResponse { events }))
    }

    async fn retry_parked_event(
        &self,
        request: Request<ParkedEventRequest>,
    ) -> Result<Response<ParkedEvent>, Status> {
        self.decide_parked(request, parked::Decision::Retry).await
    }

    async fn discard_parked_event(
        &self,
        request: Request<ParkedEventRequest>,
    ) -> Result<Response<ParkedEvent>, Status> {
        self.decide_parked(request, parked::Decision::Discard).await
    }
}
