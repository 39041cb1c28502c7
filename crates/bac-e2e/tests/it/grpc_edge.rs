//! The gateway's gRPC port as a platform service uses it: `CreateLead` with a key, what a
//! call without a key, with a key that may not write, or with bad input gets (status code plus
//! `google.rpc.ErrorInfo`), a forged tenant header that changes nothing, the request id, and
//! reflection listing the public services.
use bac_e2e::Fleet;
use bac_proto::{
    integration::v1::{
        integration_service_client::IntegrationServiceClient, CreateConnectionRequest,
        DeleteConnectionRequest, GetStatusRequest, ListConnectionsRequest, SecretFields,
        UpdateConnectionRequest, UpdateSyncSettingsRequest,
    },
    odoo::v1::{odoo_service_client::OdooServiceClient, CreateLeadRequest, Lead, ListLeadsRequest},
};
use tonic::{metadata::MetadataValue, transport::Channel, Code, Request};
use tonic_types::StatusExt;

async fn edge(fleet: &Fleet) -> OdooServiceClient<Channel> {
    let url = format!("http://{}", fleet.gateway.grpc_addr);
    OdooServiceClient::new(Channel::from_shared(url).unwrap().connect().await.unwrap())
}

fn with_key<T>(key: &str, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    let v: MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
    req.metadata_mut().insert("authorization", v);
    req
}

/// A request naming the integration of an IntegrationService call.
fn named<T>(key: &str, msg: T) -> Request<T> {
    let mut req = with_key(key, msg);
    req.metadata_mut()
        .insert("x-bac-integration", "odoo".parse().unwrap());
    req
}

fn lead(name: &str, priority: &str) -> CreateLeadRequest {
    CreateLeadRequest {
        lead: Some(Lead {
            name: name.into(),
            partner_name: "Acme Corp".into(),
            email: "contact@acmecorp.com".into(),
            expected_revenue: 50000.0,
            priority: priority.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_platform_service_creates_a_lead_over_grpc_with_its_key() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let mut client = edge(&fleet).await;

    // With the key, and a forged tenant that the gateway replaces with the key's.
    let mut req = with_key(&fleet.key, lead("Over gRPC", "high"));
    req.metadata_mut()
        .insert("x-bac-tenant", "someone-else".parse().unwrap());
    req.metadata_mut()
        .insert("x-request-id", "grpc-edge-request-1".parse().unwrap());
    let resp = client.create_lead(req).await.unwrap();
    assert_eq!(
        resp.metadata().get("x-request-id").unwrap(),
        "grpc-edge-request-1"
    );
    let created = resp.into_inner();
    assert!(created.id > 0);
    assert_eq!(created.name, "Over gRPC");
    assert_eq!(created.connection_id, conn["id"].as_str().unwrap());
    // The same lead through REST: one tenant, one system.
    let (status, got) = fleet
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/odoo/crm/leads/{}", created.id),
            None,
        )
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["name"], "Over gRPC");
    let listed = client
        .list_leads(with_key(&fleet.key, ListLeadsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.leads.len(), 1);

    // No key.
    let err = client
        .create_lead(Request::new(lead("No key", "high")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "UNAUTHENTICATED"
    );
    let err = client
        .create_lead(with_key("bac_nope_nope", lead("Bad key", "high")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // A user without a grant may not write Odoo data.
    let (_, user_key) = fleet.user_with_key("user").await;
    let err = client
        .create_lead(with_key(&user_key, lead("Not allowed", "high")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "PERMISSION_DENIED"
    );

    // The service's own validation comes back with its details.
    let err = client
        .create_lead(with_key(&fleet.key, lead("Bad priority", "urgent")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let info = err.get_details_error_info().unwrap();
    assert_eq!(info.reason, "INVALID_REQUEST");
    assert_eq!(info.metadata["integration"], "odoo");
    assert!(err.message().contains("priority"), "{err:?}");

    // bac-odoo itself believes no one but the fleet: a direct call naming the tenant, with or
    // without a key, is refused, and nothing is created.
    let direct = format!("http://{}", fleet.odoo.as_ref().unwrap().grpc_addr);
    let mut direct = OdooServiceClient::new(
        Channel::from_shared(direct)
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let mut forged = with_key(&fleet.key, lead("Forged", "high"));
    forged
        .metadata_mut()
        .insert("x-bac-tenant", fleet.tenant.parse().unwrap());
    forged.metadata_mut().insert(
        "x-bac-context-signature",
        "v1.99999999999.00".parse().unwrap(),
    );
    let err = direct.create_lead(forged).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let mut unsigned = Request::new(lead("Unsigned", "high"));
    unsigned
        .metadata_mut()
        .insert("x-bac-tenant", fleet.tenant.parse().unwrap());
    let err = direct.create_lead(unsigned).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let (_, list) = fleet
        .call(reqwest::Method::GET, "/api/v1/odoo/crm/leads", None)
        .await;
    assert_eq!(list["pagination"]["total"], 1, "{list}");
}

#[tokio::test(flavor = "multi_thread")]
async fn integration_management_reads_over_grpc_name_their_integration() {
    let fleet = Fleet::start().await;
    let (status, conn) = fleet.connect_odoo(None, "admin").await;
    assert_eq!(status, 201, "{conn}");
    let url = format!("http://{}", fleet.gateway.grpc_addr);
    let mut client =
        IntegrationServiceClient::new(Channel::from_shared(url).unwrap().connect().await.unwrap());
    let list = client
        .list_connections(named(&fleet.key, ListConnectionsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.connections.len(), 1);
    assert_eq!(list.connections[0].id, conn["id"].as_str().unwrap());
    // The names of the secret fields, never their values.
    assert_eq!(list.connections[0].secret_fields, ["password"]);
    let status = client
        .get_status(named(&fleet.key, GetStatusRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.connection_count, Some(1), "{status:?}");

    // Without the integration named: a clear refusal.
    let err = client
        .get_status(with_key(&fleet.key, GetStatusRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("x-bac-integration"), "{err:?}");
    // A user without a grant sees no Odoo status.
    let (_, user_key) = fleet.user_with_key("user").await;
    let mut req = with_key(&user_key, GetStatusRequest::default());
    req.metadata_mut()
        .insert("x-bac-integration", "odoo".parse().unwrap());
    let err = client.get_status(req).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
}

fn struct_of(v: serde_json::Value) -> pbjson_types::Struct {
    serde_json::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_changes_over_grpc_are_checked_and_audited_as_over_rest() {
    let fleet = Fleet::start().await;
    let url = format!("http://{}", fleet.gateway.grpc_addr);
    let mut client =
        IntegrationServiceClient::new(Channel::from_shared(url).unwrap().connect().await.unwrap());
    let good = || CreateConnectionRequest {
        name: "Odoo over gRPC".into(),
        config: Some(struct_of(serde_json::json!({
            "url": fleet.sandbox_url, "database": "demo", "username": "admin"}))),
        secrets: [("password".to_string(), "admin".to_string())].into(),
        ..Default::default()
    };
    // The integration must be named; the id is the gateway's to choose; the catalog's schema
    // checks the settings as it does for REST.
    let err = client
        .create_connection(with_key(&fleet.key, good()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("x-bac-integration"), "{err:?}");
    let err = client
        .create_connection(named(
            &fleet.key,
            CreateConnectionRequest {
                id: "con_mine".into(),
                ..good()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = client
        .create_connection(named(
            &fleet.key,
            CreateConnectionRequest {
                config: Some(struct_of(serde_json::json!({"url": fleet.sandbox_url}))),
                ..good()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("database"), "{err:?}");
    let (_, user_key) = fleet.user_with_key("user").await;
    let err = client
        .create_connection(named(&user_key, good()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    let created = client
        .create_connection(named(&fleet.key, good()))
        .await
        .unwrap()
        .into_inner();
    assert!(created.id.starts_with("con_"), "{created:?}");
    assert_eq!(created.secret_fields, ["password"]);
    // REST sees it: one directory.
    let (status, got) = fleet
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/integrations/connections/{}", created.id),
            None,
        )
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["name"], "Odoo over gRPC");

    // An update replaces the settings; a stale precondition is refused.
    let stale = UpdateConnectionRequest {
        id: created.id.clone(),
        name: Some("Renamed".into()),
        if_unmodified_since: Some(pbjson_types::Timestamp {
            seconds: 1,
            nanos: 0,
        }),
        ..Default::default()
    };
    let err = client
        .update_connection(with_key(&fleet.key, stale))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    let updated = client
        .update_connection(with_key(
            &fleet.key,
            UpdateConnectionRequest {
                id: created.id.clone(),
                name: Some("Renamed".into()),
                secrets: Some(SecretFields {
                    fields: [("password".to_string(), "new-secret".to_string())].into(),
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.connection.unwrap().name, "Renamed");
    assert_eq!(updated.changed_secret_fields, ["password"]);
    let settings = client
        .update_sync_settings(with_key(
            &fleet.key,
            UpdateSyncSettingsRequest {
                connection_id: created.id.clone(),
                entity: "crm_lead".into(),
                frequency: Some("daily".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(settings.frequency, "daily", "{settings:?}");
    // Another tenant's view: the id is unknown.
    let err = client
        .delete_connection(with_key(
            &fleet.other_tenant_key().await,
            DeleteConnectionRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    client
        .delete_connection(with_key(
            &fleet.key,
            DeleteConnectionRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap();

    // Audited as REST changes are, secrets never included.
    let (status, audit) = fleet
        .call(
            reqwest::Method::GET,
            "/api/v1/integrations/audit?limit=100",
            None,
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target_id"] == created.id.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "connection.deleted",
            "sync_settings.updated",
            "credentials.updated",
            "connection.updated",
            "connection.created"
        ],
        "{audit}"
    );
    assert!(!audit.to_string().contains("new-secret"));
}
