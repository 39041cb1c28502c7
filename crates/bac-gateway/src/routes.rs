//! REST routes. Each integration has its own module under its own path prefix
//! (`/api/v1/odoo/...`); management routes live under `/api/v1/integrations/...`.
pub mod connections;
pub mod odoo;

use std::sync::Arc;

use axum::{
    async_trait,
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
    routing::post,
    Router,
};
use serde::de::DeserializeOwned;

use crate::{error::ApiError, AppState};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/v1/integrations/connections",
            post(connections::create).get(connections::list),
        )
        .route(
            "/api/v1/integrations/connections/:id/test",
            post(connections::test),
        )
        .route(
            "/api/v1/odoo/crm/leads",
            post(odoo::create_lead).get(odoo::list_leads),
        )
}

/// `Json<T>` whose rejections use the one error shape.
pub struct ApiJson<T>(pub T);

#[async_trait]
impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(v))
    }
}

/// `Query<T>` whose rejections use the one error shape.
pub struct ApiQuery<T>(pub T);

#[async_trait]
impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(v))
    }
}
