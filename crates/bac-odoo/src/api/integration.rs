//! `bac.integration.v1.IntegrationService` for Odoo: connections, their test, status, syncs
//! and conflicts.
use super::*;

fn not_built(what: &str) -> Status {
    ServiceError::new(
        "odoo",
        ErrorCode::NotImplemented,
        format!("{what} is not available yet in bac-odoo (the sync engine is not built)"),
    )
    .into_status()
}

#[tonic::async_trait]
impl IntegrationService for OdooApi {
    async fn create_connection(
        &self,
        request: Request<CreateConnectionRequest>,
    ) -> Result<Response<Connection>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let config = validate_config(&req)?;
        let name = if req.name.trim().is_empty() {
            "Odoo".to_string()
        } else {
            req.name.trim().to_string()
        };
        let secrets = non_empty_secrets(req.secrets);
        let rec = self
            .connections()
            .create(&ctx.tenant_id, &req.id, &name, config, secrets)
            .await?;
        self.remote.forget_connection(&rec.id).await;
        Ok(Response::new(rec.to_proto("odoo")))
    }

    async fn get_connection(
        &self,
        request: Request<GetConnectionRequest>,
    ) -> Result<Response<Connection>, Status> {
        let ctx = ctx(&request)?;
        let rec = self
            .connections()
            .get(&ctx.tenant_id, &request.get_ref().id)
            .await?;
        Ok(Response::new(rec.to_proto("odoo")))
    }

    async fn list_connections(
        &self,
        request: Request<ListConnectionsRequest>,
    ) -> Result<Response<ListConnectionsResponse>, Status> {
        let ctx = ctx(&request)?;
        let list = self.connections().list(&ctx.tenant_id).await?;
        Ok(Response::new(ListConnectionsResponse {
            connections: list.iter().map(|r| r.to_proto("odoo")).collect(),
        }))
    }

    async fn update_connection(
        &self,
        request: Request<UpdateConnectionRequest>,
    ) -> Result<Response<UpdateConnectionResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let config = match &req.config {
            Some(c) => Some(validate_settings(
                &serde_json::to_value(c).map_err(|e| ServiceError::internal("odoo", e))?,
            )?),
            None => None,
        };
        let secrets = match req.secrets {
            Some(s) => {
                validate_secrets(&s.fields)?;
                Some(non_empty_secrets(s.fields))
            }
            None => None,
        };
        let name = match req.name.as_deref().map(str::trim) {
            Some("") => return Err(bad("name must not be empty").into()),
            other => other,
        };
        let (rec, changed) = self
            .connections()
            .update(&ctx.tenant_id, &req.id, name, config, secrets)
            .await?;
        self.remote.forget_connection(&rec.id).await;
        Ok(Response::new(UpdateConnectionResponse {
            connection: Some(rec.to_proto("odoo")),
            changed_secret_fields: changed,
        }))
    }

    async fn delete_connection(
        &self,
        request: Request<DeleteConnectionRequest>,
    ) -> Result<Response<DeleteConnectionResponse>, Status> {
        let ctx = ctx(&request)?;
        let id = request.into_inner().id;
        self.connections().delete(&ctx.tenant_id, &id).await?;
        self.remote.forget_connection(&id).await;
        Ok(Response::new(DeleteConnectionResponse {}))
    }

    async fn test_connection(
        &self,
        request: Request<TestConnectionRequest>,
    ) -> Result<Response<TestConnectionResponse>, Status> {
        let ctx = ctx(&request)?;
        let rec = self
            .connections()
            .get(&ctx.tenant_id, &request.get_ref().id)
            .await?;
        let started = Instant::now();
        let (s, version) = self.remote
            .tracked(&rec, "test_connection", async {
                let s = self.remote.session(&rec).await?;
                let version = self.remote
                    .client()
                    .version(&s.url)
                    .await
                    .map_err(|e| service_error(e, &s.url))?;
                self.remote.forget_connection(&rec.id).await;
                self.remote.uid(&rec, &s).await?;
                Ok((s, version))
            })
            .await?;
        let server_version = version["server_version"].as_str().unwrap_or("").to_string();
        Ok(Response::new(TestConnectionResponse {
            ok: true,
            message: format!(
                "logged in to Odoo {server_version} database {} as {}",
                s.database, s.username
            ),
            server_version,
            latency_ms: started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32,
        }))
    }

    async fn trigger_sync(
        &self,
        _request: Request<TriggerSyncRequest>,
    ) -> Result<Response<TriggerSyncResponse>, Status> {
        Err(not_built("TriggerSync"))
    }

    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<IntegrationStatus>, Status> {
        let ctx = ctx(&request)?;
        if let Some(status) = self.remote.cached_status(&ctx.tenant_id) {
            return Ok(Response::new(status));
        }
        let connections = self.connections().list(&ctx.tenant_id).await?;
        let ids: Vec<String> = connections.iter().map(|c| c.id.clone()).collect();
        let last = calls::last_calls(&self.db(), &ctx.tenant_id, &ids).await?;
        let window = calls::window_24h(&self.db(), &ctx.tenant_id).await?;
        let status = calls::status(&connections, &last, &window, stored_valid);
        self.remote.cache_status(&ctx.tenant_id, &status);
        Ok(Response::new(status))
    }

    async fn list_sync_runs(
        &self,
        _request: Request<ListSyncRunsRequest>,
    ) -> Result<Response<ListSyncRunsResponse>, Status> {
        Err(not_built("ListSyncRuns"))
    }

    async fn list_conflicts(
        &self,
        _request: Request<ListConflictsRequest>,
    ) -> Result<Response<ListConflictsResponse>, Status> {
        Err(not_built("ListConflicts"))
    }

    async fn resolve_conflict(
        &self,
        _request: Request<ResolveConflictRequest>,
    ) -> Result<Response<Conflict>, Status> {
        Err(not_built("ResolveConflict"))
    }
}

