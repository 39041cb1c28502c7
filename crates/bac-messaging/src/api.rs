//! `bac.messaging.v1.MessagingService`: email sends (a delivery queued with its event, sent
//! by [`crate::deliveries::Worker`]), deliveries and templates.
use bac_proto::messaging::v1::{
    messaging_service_server::MessagingService, CreateWebhookEndpointRequest,
    DeleteTemplateRequest, DeleteTemplateResponse, DeleteWebhookEndpointRequest,
    DeleteWebhookEndpointResponse, Delivery, GetDeliveryRequest, GetTemplateRequest,
    GetWebhookEndpointRequest, ListDeliveriesRequest, ListDeliveriesResponse, ListTemplatesRequest,
    ListTemplatesResponse, ListWebhookEndpointsRequest, ListWebhookEndpointsResponse,
    ListWebhookMessagesRequest, ListWebhookMessagesResponse, PutTemplateRequest,
    RenderTemplateRequest, RenderedTemplate, ReplayWebhookMessagesRequest,
    ReplayWebhookMessagesResponse, RotateWebhookSecretRequest, SendEmailRequest,
    SendGoogleChatMessageRequest, SendSlackMessageRequest, SendTeamsMessageRequest, Template,
    UpdateWebhookEndpointRequest, WebhookEndpoint,
};
use bac_runtime::{
    connections::{timestamp, ConnectionRecord, ConnectionStore},
    db::Pool,
    RequestContext, ServiceError,
};
use serde_json::Value;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    bad,
    connector::channel_of,
    deliveries::{self, NewDelivery, Worker},
    smtp,
    templates::{self, Parts, Stored},
};

/// At most this many recipients across to, cc and bcc.
pub const MAX_RECIPIENTS: usize = 50;

#[derive(Clone)]
pub struct MessagingApi {
    db: Pool,
    store: ConnectionStore,
    worker: Worker,
    endpoints: crate::webhooks::Endpoints,
    /// Wakes the webhook sender (an endpoint enabled again, a replay).
    wake_webhooks: std::sync::Arc<tokio::sync::Notify>,
}

fn time_of(t: Option<pbjson_types::Timestamp>) -> Option<chrono::DateTime<chrono::Utc>> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

fn ctx<T>(req: &Request<T>) -> Result<RequestContext, Status> {
    RequestContext::from_metadata(req.metadata())
}

fn template_proto(t: Stored) -> Template {
    Template {
        name: t.name,
        version: t.version,
        subject: t.parts.subject,
        text: t.parts.text,
        html: t.parts.html,
        description: t.description,
        variables: t.variables,
        created_at: Some(timestamp(t.created_at)),
    }
}

fn variables_json(v: Option<pbjson_types::Struct>) -> Result<Value, ServiceError> {
    match v {
        None => Ok(Value::Object(Default::default())),
        Some(s) => serde_json::to_value(s)
            .map_err(|e| ServiceError::internal("messaging", format!("variables: {e}"))),
    }
}

impl MessagingApi {
    pub fn new(
        db: Pool,
        store: ConnectionStore,
        worker: Worker,
        endpoints: crate::webhooks::Endpoints,
        wake_webhooks: std::sync::Arc<tokio::sync::Notify>,
    ) -> Self {
        MessagingApi {
            db,
            store,
            worker,
            endpoints,
            wake_webhooks,
        }
    }

    /// The tenant's email connection: the one named, or its only one.
    async fn email_connection(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<ConnectionRecord, ServiceError> {
        self.store
            .resolve_kind(tenant, id, "email", |r| channel_of(r) == "email")
            .await
    }

    /// Checks an email request, renders it and queues it: the delivery, and whether it is new
    /// (`false`: the request's idempotency key named an earlier one, which is the answer).
    /// REST, gRPC and the commands topic all send through here.
    pub async fn queue_email(
        &self,
        tenant: &str,
        req: SendEmailRequest,
    ) -> Result<(deliveries::Delivery, bool), ServiceError> {
        let (intent, given) = bac_connector::intent_of("messaging", &req.intent_id)?;
        if given {
            if let Some(first) = deliveries::by_intent(&self.db, tenant, &intent).await? {
                return Ok((first, false));
            }
        }
        if req.to.is_empty() {
            return Err(bad("to is required: at least one recipient"));
        }
        if req.to.len() + req.cc.len() + req.bcc.len() > MAX_RECIPIENTS {
            return Err(bad(format!(
                "at most {MAX_RECIPIENTS} recipients across to, cc and bcc"
            )));
        }
        let to = recipients("to", &req.to)?;
        let cc = recipients("cc", &req.cc)?;
        let bcc = recipients("bcc", &req.bcc)?;
        if !req.reply_to.is_empty() {
            smtp::mailbox("reply_to", &req.reply_to)?;
        }
        let rec = self.email_connection(tenant, &req.connection_id).await?;
        let (parts, template, template_version) = self.content(tenant, &req).await?;
        let from = rec.setting("from_address");
        // the sender's domain as an address parser reads it (`Billing <b@x.com>` is x.com)
        let domain = smtp::mailbox("from_address", from)
            .map(|m| m.email.domain().to_string())
            .unwrap_or_else(|_| "bac.local".into());
        let message_id = format!("<{}@{domain}>", Uuid::now_v7().simple());
        // the message is built whole once before it is queued: what cannot be sent is refused now
        smtp::build(&smtp::Draft {
            from,
            from_name: rec.setting("from_name"),
            to: &to,
            cc: &cc,
            bcc: &bcc,
            reply_to: &req.reply_to,
            subject: &parts.subject,
            text: &parts.text,
            html: &parts.html,
            message_id: &message_id,
        })?;
        let (d, created) = deliveries::enqueue(
            &self.db,
            &NewDelivery {
                tenant_id: tenant.to_string(),
                connection_id: rec.id.clone(),
                channel: "email".into(),
                intent_id: intent,
                to,
                cc,
                bcc,
                reply_to: req.reply_to.trim().to_string(),
                subject: parts.subject,
                text: parts.text,
                html: parts.html,
                template,
                template_version,
                message_id,
                payload: None,
                thread_key: String::new(),
                respond_to: None,
            },
        )
        .await?;
        if created {
            self.worker.wake();
            tracing::info!(delivery = %d.id, connection = %rec.id, "email queued");
        }
        Ok((d, created))
    }

    /// Checks and queues a Teams message (REST, gRPC and commands).
    pub async fn send_teams(
        &self,
        tenant: &str,
        mut req: SendTeamsMessageRequest,
    ) -> Result<deliveries::Delivery, ServiceError> {
        let card = match req.card.take() {
            Some(c) => {
                let v = serde_json::to_value(c)
                    .map_err(|e| ServiceError::internal("messaging", format!("card: {e}")))?;
                if v["type"] != "AdaptiveCard" {
                    return Err(bad(
                        "card must be an Adaptive Card: {\"type\": \"AdaptiveCard\", ...}",
                    ));
                }
                Some(v)
            }
            None => None,
        };
        if card.is_none() && req.text.trim().is_empty() && req.title.trim().is_empty() {
            return Err(bad("text, title or card is required"));
        }
        if req.text.chars().count() > 20_000 || req.title.chars().count() > 500 {
            return Err(bad(
                "title must be at most 500 characters and text at most 20000",
            ));
        }
        let subject = if req.title.is_empty() {
            req.text.lines().next().unwrap_or("").to_string()
        } else {
            req.title.clone()
        };
        if !req.conversation_id.is_empty() {
            return self.send_teams_bot(tenant, req, card).await;
        }
        if !req.reply_to_id.is_empty() {
            return Err(bad(
                "reply_to_id answers a bot's conversation: give conversation_id too",
            ));
        }
        let payload = crate::chat::teams_payload(&req.title, &req.text, card);
        self.queue_chat(
            tenant,
            "teams",
            &req.connection_id,
            &req.intent_id,
            &subject,
            &req.text,
            payload,
            "",
        )
        .await
    }

    /// A Teams bot's message into one of its conversations (a reply when `reply_to_id`).
    async fn send_teams_bot(
        &self,
        tenant: &str,
        req: SendTeamsMessageRequest,
        card: Option<Value>,
    ) -> Result<deliveries::Delivery, ServiceError> {
        let (intent, given) = bac_connector::intent_of("messaging", &req.intent_id)?;
        if given {
            if let Some(first) = deliveries::by_intent(&self.db, tenant, &intent).await? {
                return Ok(first);
            }
        }
        let rec = self
            .store
            .resolve_kind(tenant, &req.connection_id, "Teams bot", |r| {
                channel_of(r) == "teams_bot"
            })
            .await?;
        let service_url = crate::teams_bot::service_url(&self.db, tenant, &rec.id, &req.conversation_id)
            .await?
            .ok_or_else(|| {
                ServiceError::new(
                    "messaging",
                    bac_runtime::ErrorCode::NotFound,
                    "the bot has heard nothing from this conversation: it can answer only conversations that wrote to it",
                )
            })?;
        let text = if req.title.is_empty() {
            req.text.clone()
        } else if req.text.is_empty() {
            format!("**{}**", req.title)
        } else {
            format!("**{}**\n\n{}", req.title, req.text)
        };
        let payload = serde_json::json!({
            "service_url": service_url,
            "conversation_id": req.conversation_id,
            "reply_to_id": req.reply_to_id,
            "activity": crate::teams_bot::activity(&text, card, &req.reply_to_id),
        });
        let (d, created) = deliveries::enqueue(
            &self.db,
            &NewDelivery {
                tenant_id: tenant.to_string(),
                connection_id: rec.id.clone(),
                channel: "teams_bot".into(),
                intent_id: intent,
                to: vec![req.conversation_id.clone()],
                subject: text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(998)
                    .collect(),
                text,
                message_id: format!("teams-{}", Uuid::now_v7().simple()),
                payload: Some(payload),
                thread_key: req.reply_to_id.clone(),
                ..Default::default()
            },
        )
        .await?;
        if created {
            self.worker.wake();
            tracing::info!(delivery = %d.id, connection = %rec.id, "Teams bot message queued");
        }
        Ok(d)
    }

    /// Checks and queues a Google Chat message (REST, gRPC and commands).
    pub async fn send_google_chat(
        &self,
        tenant: &str,
        req: SendGoogleChatMessageRequest,
    ) -> Result<deliveries::Delivery, ServiceError> {
        if req.text.trim().is_empty() {
            return Err(bad("text is required"));
        }
        if req.text.chars().count() > 4000 || req.thread_key.len() > 200 {
            return Err(bad(
                "text must be at most 4000 characters and thread_key at most 200",
            ));
        }
        let payload = crate::chat::google_chat_payload(&req.text, &req.thread_key);
        let subject = req.text.lines().next().unwrap_or("").to_string();
        self.queue_chat(
            tenant,
            "google_chat",
            &req.connection_id,
            &req.intent_id,
            &subject,
            &req.text,
            payload,
            &req.thread_key,
        )
        .await
    }

    /// Checks and queues a Slack message or a slash command's answer (REST, gRPC, commands).
    pub async fn send_slack(
        &self,
        tenant: &str,
        req: SendSlackMessageRequest,
    ) -> Result<deliveries::Delivery, ServiceError> {
        let blocks: Vec<Value> = req
            .blocks
            .iter()
            .map(|b| serde_json::to_value(b).unwrap_or(Value::Null))
            .collect();
        if req.text.trim().is_empty() && blocks.is_empty() {
            return Err(bad("text, blocks or both are required"));
        }
        if req.text.chars().count() > 40_000 {
            return Err(bad("text must be at most 40000 characters"));
        }
        if blocks.len() > 50 || blocks.iter().any(|b| !b["type"].is_string()) {
            return Err(bad(
                "blocks must be at most 50 Block Kit blocks, each with a type (\"section\", \"header\", ...)",
            ));
        }
        if !req.thread_ts.is_empty() && !slack_ts(&req.thread_ts) {
            return Err(bad(
                "thread_ts must be a message's ts such as 1712345678.000100",
            ));
        }
        let (intent, given) = bac_connector::intent_of("messaging", &req.intent_id)?;
        if given {
            if let Some(first) = deliveries::by_intent(&self.db, tenant, &intent).await? {
                return Ok(first);
            }
        }
        let rec = self
            .store
            .resolve_kind(tenant, &req.connection_id, "Slack", |r| {
                channel_of(r) == "slack"
            })
            .await?;
        let mut payload = serde_json::json!({"text": req.text});
        if !blocks.is_empty() {
            payload["blocks"] = Value::Array(blocks);
        }
        let (respond_to, to) = if req.command_id.is_empty() {
            let channel = req.channel.trim();
            let valid = (2..=80).contains(&channel.len())
                && channel
                    .trim_start_matches('#')
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid {
                return Err(bad(
                    "channel is required: a channel id (C0123ABCD) or #name",
                ));
            }
            if !req.response_type.is_empty() {
                return Err(bad(
                    "response_type is for answers to a command (command_id)",
                ));
            }
            payload["channel"] = Value::from(channel);
            if !req.thread_ts.is_empty() {
                payload["thread_ts"] = Value::from(req.thread_ts.clone());
            }
            (None, channel.to_string())
        } else {
            if !req.channel.is_empty() || !req.thread_ts.is_empty() {
                return Err(bad(
                    "an answer to a command goes to the command's channel: no channel or thread_ts",
                ));
            }
            let rt = match req.response_type.as_str() {
                "" | "ephemeral" => "ephemeral",
                "in_channel" => "in_channel",
                _ => return Err(bad("response_type must be ephemeral or in_channel")),
            };
            payload["response_type"] = Value::from(rt);
            let id = Uuid::parse_str(&req.command_id)
                .map_err(|_| bad("command_id is not a command's id"))?;
            let (_, channel) = crate::slack::response_url(&self.db, tenant, &rec.id, &id)
                .await?
                .ok_or_else(|| {
                    ServiceError::new(
                        "messaging",
                        bac_runtime::ErrorCode::NotFound,
                        format!("no Slack command {id} on this connection"),
                    )
                })?;
            (Some(id), channel)
        };
        let (d, created) = deliveries::enqueue(
            &self.db,
            &NewDelivery {
                tenant_id: tenant.to_string(),
                connection_id: rec.id.clone(),
                channel: "slack".into(),
                intent_id: intent,
                to: vec![to],
                subject: req
                    .text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(998)
                    .collect(),
                text: req.text.clone(),
                message_id: format!("slack-{}", Uuid::now_v7().simple()),
                payload: Some(payload),
                thread_key: req.thread_ts.clone(),
                respond_to,
                ..Default::default()
            },
        )
        .await?;
        if created {
            self.worker.wake();
            tracing::info!(delivery = %d.id, connection = %rec.id, "Slack message queued");
        }
        Ok(d)
    }

    /// Queues a post to a chat channel's incoming webhook (`teams`, `google_chat`).
    #[allow(clippy::too_many_arguments)]
    async fn queue_chat(
        &self,
        tenant: &str,
        channel: &str,
        connection_id: &str,
        intent_id: &str,
        subject: &str,
        text: &str,
        payload: serde_json::Value,
        thread_key: &str,
    ) -> Result<deliveries::Delivery, ServiceError> {
        let (intent, given) = bac_connector::intent_of("messaging", intent_id)?;
        if given {
            if let Some(first) = deliveries::by_intent(&self.db, tenant, &intent).await? {
                return Ok(first);
            }
        }
        let label = if channel == "teams" {
            "Teams"
        } else {
            "Google Chat"
        };
        let rec = self
            .store
            .resolve_kind(tenant, connection_id, label, |r| channel_of(r) == channel)
            .await?;
        let (d, created) = deliveries::enqueue(
            &self.db,
            &NewDelivery {
                tenant_id: tenant.to_string(),
                connection_id: rec.id.clone(),
                channel: channel.to_string(),
                intent_id: intent,
                subject: subject.chars().take(998).collect(),
                text: text.to_string(),
                message_id: format!("{channel}-{}", Uuid::now_v7().simple()),
                payload: Some(payload),
                thread_key: thread_key.to_string(),
                ..Default::default()
            },
        )
        .await?;
        if created {
            self.worker.wake();
            tracing::info!(delivery = %d.id, connection = %rec.id, channel, "chat message queued");
        }
        Ok(d)
    }

    pub fn db(&self) -> &Pool {
        &self.db
    }

    /// What an email request says once its template (if any) is rendered.
    async fn content(
        &self,
        tenant: &str,
        req: &SendEmailRequest,
    ) -> Result<(Parts, String, u32), ServiceError> {
        if req.template.is_empty() {
            if req.subject.trim().is_empty() {
                return Err(bad("subject is required (or name a template)"));
            }
            if req.text.is_empty() && req.html.is_empty() {
                return Err(bad("text, html or both are required (or name a template)"));
            }
            if req.variables.is_some() {
                return Err(bad("variables are for templates: name one in template"));
            }
            templates::check_lengths(&Parts {
                subject: req.subject.clone(),
                text: req.text.clone(),
                html: req.html.clone(),
            })?;
            return Ok((
                Parts {
                    subject: req.subject.clone(),
                    text: req.text.clone(),
                    html: req.html.clone(),
                },
                String::new(),
                0,
            ));
        }
        if !req.text.is_empty() || !req.html.is_empty() {
            return Err(bad("give a template or text/html, not both"));
        }
        let t = templates::get(&self.db, tenant, &req.template, req.template_version).await?;
        let vars = variables_json(req.variables.clone())?;
        let mut rendered = templates::render(&t.parts, &vars)?;
        if !req.subject.trim().is_empty() {
            rendered.subject = req.subject.clone();
            templates::check_lengths(&Parts {
                subject: rendered.subject.clone(),
                ..Default::default()
            })?;
        }
        Ok((rendered, t.name, t.version))
    }
}

fn recipients(field: &str, list: &[String]) -> Result<Vec<String>, ServiceError> {
    list.iter()
        .map(|a| smtp::mailbox(field, a).map(|m| m.to_string()))
        .collect()
}

#[tonic::async_trait]
impl MessagingService for MessagingApi {
    async fn send_email(
        &self,
        request: Request<SendEmailRequest>,
    ) -> Result<Response<Delivery>, Status> {
        let ctx = ctx(&request)?;
        let (d, _) = self
            .queue_email(&ctx.tenant_id, request.into_inner())
            .await?;
        Ok(Response::new(d.to_proto()))
    }

    async fn get_delivery(
        &self,
        request: Request<GetDeliveryRequest>,
    ) -> Result<Response<Delivery>, Status> {
        let ctx = ctx(&request)?;
        let d = deliveries::get(&self.db, &ctx.tenant_id, &request.get_ref().id).await?;
        Ok(Response::new(d.to_proto()))
    }

    async fn list_deliveries(
        &self,
        request: Request<ListDeliveriesRequest>,
    ) -> Result<Response<ListDeliveriesResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        if !req.status.is_empty()
            && ![
                deliveries::QUEUED,
                deliveries::SENT,
                deliveries::DEFERRED,
                deliveries::BOUNCED,
                deliveries::FAILED,
            ]
            .contains(&req.status.as_str())
        {
            return Err(bad("status must be queued, sent, deferred, bounced or failed").into());
        }
        let size = bac_connector::page_size("messaging", req.page_size, 50, 200)?;
        let (page, next) =
            deliveries::list(&self.db, &ctx.tenant_id, &req.status, size, &req.page_token).await?;
        Ok(Response::new(ListDeliveriesResponse {
            deliveries: page.iter().map(|d| d.to_proto()).collect(),
            next_page_token: next,
        }))
    }

    async fn put_template(
        &self,
        request: Request<PutTemplateRequest>,
    ) -> Result<Response<Template>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let parts = Parts {
            subject: req.subject,
            text: req.text,
            html: req.html,
        };
        let (t, created) = templates::put(
            &self.db,
            &ctx.tenant_id,
            &req.name,
            &parts,
            &req.description,
        )
        .await?;
        if created {
            tracing::info!(template = %t.name, version = t.version, "template stored");
        }
        Ok(Response::new(template_proto(t)))
    }

    async fn get_template(
        &self,
        request: Request<GetTemplateRequest>,
    ) -> Result<Response<Template>, Status> {
        let ctx = ctx(&request)?;
        let req = request.get_ref();
        let t = templates::get(&self.db, &ctx.tenant_id, &req.name, req.version).await?;
        Ok(Response::new(template_proto(t)))
    }

    async fn list_templates(
        &self,
        request: Request<ListTemplatesRequest>,
    ) -> Result<Response<ListTemplatesResponse>, Status> {
        let ctx = ctx(&request)?;
        let all = templates::list(&self.db, &ctx.tenant_id).await?;
        Ok(Response::new(ListTemplatesResponse {
            templates: all.into_iter().map(template_proto).collect(),
        }))
    }

    async fn render_template(
        &self,
        request: Request<RenderTemplateRequest>,
    ) -> Result<Response<RenderedTemplate>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let t = templates::get(&self.db, &ctx.tenant_id, &req.name, req.version).await?;
        let r = templates::render(&t.parts, &variables_json(req.variables)?)?;
        Ok(Response::new(RenderedTemplate {
            name: t.name,
            version: t.version,
            subject: r.subject,
            text: r.text,
            html: r.html,
        }))
    }

    async fn delete_template(
        &self,
        request: Request<DeleteTemplateRequest>,
    ) -> Result<Response<DeleteTemplateResponse>, Status> {
        let ctx = ctx(&request)?;
        let versions = templates::delete(&self.db, &ctx.tenant_id, &request.get_ref().name).await?;
        tracing::info!(template = %request.get_ref().name, versions, "template deleted");
        Ok(Response::new(DeleteTemplateResponse { versions }))
    }

    async fn send_teams_message(
        &self,
        request: Request<SendTeamsMessageRequest>,
    ) -> Result<Response<Delivery>, Status> {
        let ctx = ctx(&request)?;
        let d = self
            .send_teams(&ctx.tenant_id, request.into_inner())
            .await?;
        Ok(Response::new(d.to_proto()))
    }

    async fn send_google_chat_message(
        &self,
        request: Request<SendGoogleChatMessageRequest>,
    ) -> Result<Response<Delivery>, Status> {
        let ctx = ctx(&request)?;
        let d = self
            .send_google_chat(&ctx.tenant_id, request.into_inner())
            .await?;
        Ok(Response::new(d.to_proto()))
    }

    async fn send_slack_message(
        &self,
        request: Request<SendSlackMessageRequest>,
    ) -> Result<Response<Delivery>, Status> {
        let ctx = ctx(&request)?;
        let d = self
            .send_slack(&ctx.tenant_id, request.into_inner())
            .await?;
        Ok(Response::new(d.to_proto()))
    }

    async fn create_webhook_endpoint(
        &self,
        request: Request<CreateWebhookEndpointRequest>,
    ) -> Result<Response<WebhookEndpoint>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let (e, secret) = self
            .endpoints
            .create(&ctx.tenant_id, &req.url, &req.event_types, &req.description)
            .await?;
        // the URL may carry the subscriber's token: its host only
        let host = url::Url::parse(&e.url)
            .ok()
            .and_then(|u| u.host_str().map(String::from))
            .unwrap_or_default();
        tracing::info!(endpoint = %e.id, %host, "webhook endpoint registered");
        Ok(Response::new(e.to_proto(Some(secret))))
    }

    async fn list_webhook_endpoints(
        &self,
        request: Request<ListWebhookEndpointsRequest>,
    ) -> Result<Response<ListWebhookEndpointsResponse>, Status> {
        let ctx = ctx(&request)?;
        let all = self.endpoints.list(&ctx.tenant_id).await?;
        Ok(Response::new(ListWebhookEndpointsResponse {
            endpoints: all.iter().map(|e| e.to_proto(None)).collect(),
        }))
    }

    async fn get_webhook_endpoint(
        &self,
        request: Request<GetWebhookEndpointRequest>,
    ) -> Result<Response<WebhookEndpoint>, Status> {
        let ctx = ctx(&request)?;
        let e = self
            .endpoints
            .get(&ctx.tenant_id, &request.get_ref().id)
            .await?;
        Ok(Response::new(e.to_proto(None)))
    }

    async fn update_webhook_endpoint(
        &self,
        request: Request<UpdateWebhookEndpointRequest>,
    ) -> Result<Response<WebhookEndpoint>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let types = (!req.event_types.is_empty()).then_some(req.event_types.as_slice());
        let e = self
            .endpoints
            .update(
                &ctx.tenant_id,
                &req.id,
                req.url.as_deref(),
                types,
                req.description.as_deref(),
                req.enabled,
            )
            .await?;
        if req.enabled == Some(true) {
            self.wake_webhooks.notify_one();
        }
        Ok(Response::new(e.to_proto(None)))
    }

    async fn delete_webhook_endpoint(
        &self,
        request: Request<DeleteWebhookEndpointRequest>,
    ) -> Result<Response<DeleteWebhookEndpointResponse>, Status> {
        let ctx = ctx(&request)?;
        self.endpoints
            .delete(&ctx.tenant_id, &request.get_ref().id)
            .await?;
        Ok(Response::new(DeleteWebhookEndpointResponse {}))
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<RotateWebhookSecretRequest>,
    ) -> Result<Response<WebhookEndpoint>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let overlap = match req.overlap_seconds {
            0 => std::time::Duration::from_secs(86_400),
            n if n > 604_800 => {
                return Err(bad("overlap_seconds must be at most 604800 (a week)").into())
            }
            n => std::time::Duration::from_secs(u64::from(n)),
        };
        let (e, secret) = self
            .endpoints
            .rotate(&ctx.tenant_id, &req.id, overlap)
            .await?;
        Ok(Response::new(e.to_proto(Some(secret))))
    }

    async fn list_webhook_messages(
        &self,
        request: Request<ListWebhookMessagesRequest>,
    ) -> Result<Response<ListWebhookMessagesResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        if !["", "pending", "delivered", "failed"].contains(&req.status.as_str()) {
            return Err(bad("status must be pending, delivered or failed").into());
        }
        let size = bac_connector::page_size("messaging", req.page_size, 50, 200)?;
        let messages = self
            .endpoints
            .messages(&ctx.tenant_id, &req.id, &req.status, size)
            .await?;
        Ok(Response::new(ListWebhookMessagesResponse { messages }))
    }

    async fn replay_webhook_messages(
        &self,
        request: Request<ReplayWebhookMessagesRequest>,
    ) -> Result<Response<ReplayWebhookMessagesResponse>, Status> {
        let ctx = ctx(&request)?;
        let req = request.into_inner();
        let replayed = self
            .endpoints
            .replay(
                &ctx.tenant_id,
                &req.id,
                &req.message_id,
                time_of(req.since),
                time_of(req.until),
            )
            .await?;
        self.wake_webhooks.notify_one();
        Ok(Response::new(ReplayWebhookMessagesResponse { replayed }))
    }
}

/// A Slack message timestamp: seconds, a dot, microseconds.
fn slack_ts(s: &str) -> bool {
    matches!(s.split_once('.'), Some((a, b)) if !a.is_empty() && a.len() <= 12 && !b.is_empty() && b.len() <= 8
        && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()))
}
