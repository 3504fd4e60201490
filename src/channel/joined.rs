//! The joined channels of one connection: the channel layer's [`Handler`] for the transport.
//!
//! Owned by the connection's task; nothing here is shared, so no locks. Every channel that
//! leaves this map (leave, rejoin, crash, disconnect) has its `terminate` run and its
//! subscription dropped (the [`Subscription`] guard unsubscribes even if a callback panics).

use std::{any::Any, panic::AssertUnwindSafe, sync::Arc};

use futures_util::FutureExt;
use serde_json::{Value, json};

use super::{
    Assigns, Socket, TerminateReason,
    rate::{Kind, RateLimits, Verdict},
    router::{DynChannel, Router},
    socket::{ChannelInfo, Conn, Subscription},
};
use crate::text::panic_message;
use crate::transport::{
    Disconnect, Frame,
    connection::Handler,
    frame::{Status, encode, encode_reply, events},
};

struct Joined {
    channel: Arc<dyn DynChannel>,
    socket: Socket,
    _subscription: Subscription,
}

/// All channels joined on one connection.
pub(crate) struct JoinedChannels {
    router: Arc<Router>,
    conn: Conn,
    assigns: Arc<Assigns>,
    max_channels: usize,
    rate: RateLimits,
    /// Joined channels by topic: a short list (most connections join one or two topics,
    /// and a map's smallest table is several times the size of one entry).
    joined: Vec<(Arc<str>, Joined)>,
}

impl JoinedChannels {
    pub(crate) fn new(
        router: Arc<Router>,
        conn: Conn,
        assigns: Arc<Assigns>,
        max_channels: usize,
        rate: RateLimits,
    ) -> JoinedChannels {
        JoinedChannels {
            router,
            conn,
            assigns,
            max_channels,
            rate,
            joined: Vec::new(),
        }
    }

    fn find(&self, topic: &str) -> Option<&Joined> {
        self.joined
            .iter()
            .find(|(t, _)| &**t == topic)
            .map(|(_, j)| j)
    }

    fn find_mut(&mut self, topic: &str) -> Option<&mut Joined> {
        self.joined
            .iter_mut()
            .find(|(t, _)| &**t == topic)
            .map(|(_, j)| j)
    }

    fn take(&mut self, topic: &str) -> Option<Joined> {
        let at = self.joined.iter().position(|(t, _)| &**t == topic)?;
        Some(self.joined.swap_remove(at).1)
    }

    fn reply(&self, join_ref: Option<&str>, frame: &Frame, status: Status, response: &Value) {
        let bytes = encode_reply(
            join_ref,
            frame.msg_ref.as_deref(),
            &frame.topic,
            status,
            response,
        );
        let _ = self.conn.outbox.push_frame(bytes);
    }

    fn reply_unmatched(&self, frame: &Frame) {
        tracing::debug!(topic = %frame.topic, event = %frame.event, "unmatched topic");
        // As Phoenix: the join_ref of this reply is null.
        self.reply(
            None,
            frame,
            Status::Error,
            &json!({"reason": "unmatched topic"}),
        );
    }

    /// Sends a `phx_close` or `phx_error` for a join (its ref is the join ref).
    fn control(&self, topic: &str, join_ref: &str, event: &str) {
        let frame = encode(Some(join_ref), Some(join_ref), topic, event, &json!({}));
        let _ = self.conn.outbox.push_frame(frame);
    }

    async fn end(&mut self, topic: &str, reason: TerminateReason) {
        if let Some(mut joined) = self.take(topic) {
            if matches!(reason, TerminateReason::Leave) {
                joined.socket.mark_left();
            }
            let terminate = joined.channel.terminate(&reason, &mut joined.socket);
            if let Err(panic) = AssertUnwindSafe(terminate).catch_unwind().await {
                tracing::error!(%topic, "terminate failed: {}", panic_message(&*panic));
            }
        }
    }

    async fn crash(&mut self, topic: &str, reason: String) {
        tracing::warn!(%topic, %reason, "channel crashed");
        if let Some(joined) = self.find(topic) {
            let join_ref = joined.socket.join_ref().to_string();
            self.end(topic, TerminateReason::Crash(reason)).await;
            self.control(topic, &join_ref, events::ERROR);
        }
    }

    async fn join(&mut self, frame: Frame) {
        let Some(channel) = self.router.find(&frame.topic).cloned() else {
            return self.reply_unmatched(&frame);
        };
        let Some(join_ref) = frame.join_ref.clone().or_else(|| frame.msg_ref.clone()) else {
            return self.reply(
                None,
                &frame,
                Status::Error,
                &json!({"reason": "join_ref required"}),
            );
        };
        if let Some(old) = self.find(&frame.topic) {
            let old_ref = old.socket.join_ref().to_string();
            self.end(&frame.topic, TerminateReason::Rejoin).await;
            self.control(&frame.topic, &old_ref, events::CLOSE);
        } else if self.joined.len() >= self.max_channels {
            tracing::info!(topic = %frame.topic, max = self.max_channels, "too many channels");
            return self.reply(
                Some(&join_ref),
                &frame,
                Status::Error,
                &json!({"reason": "too many channels"}),
            );
        }

        let topic: Arc<str> = frame.topic.as_str().into();
        let join_ref: Arc<str> = join_ref.into();
        let mut socket = Socket::new(
            topic.clone(),
            join_ref.clone(),
            (*self.assigns).clone(),
            self.conn.clone(),
        );
        socket.current_ref = frame.msg_ref.clone();
        let joining = channel.join(&topic, frame.payload.clone(), &mut socket);
        let result = AssertUnwindSafe(joining).catch_unwind().await;
        socket.current_ref = None;
        match result {
            Ok(Ok(response)) => {
                crate::metrics::metrics().joins.inc();
                let subscription = Subscription::new(&self.conn, topic.clone(), socket.join_id());
                self.reply(Some(&join_ref), &frame, Status::Ok, &response);
                for pushed in socket.take_deferred() {
                    let _ = socket.outbox().push_frame(pushed);
                }
                // Exactly one more slot: a Vec's first growth would reserve four.
                self.joined.reserve_exact(1);
                self.joined.push((
                    topic,
                    Joined {
                        channel,
                        socket,
                        _subscription: subscription,
                    },
                ));
            }
            Ok(Err(refusal)) => {
                tracing::debug!(topic = %frame.topic, response = %refusal.0, "join refused");
                self.reply(Some(&join_ref), &frame, Status::Error, &refusal.0);
            }
            Err(panic) => {
                tracing::error!(topic = %frame.topic, "join failed: {}", panic_message(&*panic));
                self.reply(
                    Some(&join_ref),
                    &frame,
                    Status::Error,
                    &json!({"reason": "join crashed"}),
                );
            }
        }
    }

    async fn leave(&mut self, frame: Frame) {
        let current = self
            .find(&frame.topic)
            .map(|j| j.socket.join_ref().to_string());
        let ours = matches!((&current, &frame.join_ref), (Some(c), Some(f)) if c == f)
            || (current.is_some() && frame.join_ref.is_none());
        self.reply(frame.join_ref.as_deref(), &frame, Status::Ok, &json!({}));
        if let (true, Some(join_ref)) = (ours, current) {
            self.end(&frame.topic, TerminateReason::Leave).await;
            self.control(&frame.topic, &join_ref, events::CLOSE);
        }
    }

    async fn dispatch(&mut self, frame: Frame) {
        let Some(joined) = self.find_mut(&frame.topic) else {
            return self.reply_unmatched(&frame);
        };
        if frame
            .join_ref
            .as_deref()
            .is_some_and(|r| r != joined.socket.join_ref())
        {
            tracing::debug!(topic = %frame.topic, event = %frame.event, "ignoring stale join_ref");
            return;
        }
        let channel = joined.channel.clone();
        let socket = &mut joined.socket;
        socket.current_ref = frame.msg_ref.clone();
        let handling = channel.handle_in(&frame.event, frame.payload, socket);
        let result = AssertUnwindSafe(handling).catch_unwind().await;
        socket.current_ref = None;
        match result {
            Ok(Ok(reply)) => socket.send_reply(frame.msg_ref.as_deref(), &reply),
            Ok(Err(err)) => self.crash(&frame.topic, err.to_string()).await,
            Err(panic) => self.crash(&frame.topic, panic_message(&*panic)).await,
        }
    }
}

impl JoinedChannels {
    /// Applies the connection's rate limits to `frame`: `Ok(true)` to handle it, `Ok(false)`
    /// when it was refused (and answered), `Err` to close the connection.
    fn admit(&mut self, frame: &Frame) -> Result<bool, Disconnect> {
        let kind = match frame.event.as_str() {
            events::LEAVE => return Ok(true),
            events::JOIN => Kind::Join,
            _ => Kind::Event,
        };
        match self.rate.check(kind) {
            Verdict::Allowed => Ok(true),
            Verdict::Refused => {
                let join_ref = match kind {
                    Kind::Join => frame.join_ref.as_deref().or(frame.msg_ref.as_deref()),
                    Kind::Event => frame.join_ref.as_deref(),
                };
                self.reply(
                    join_ref,
                    frame,
                    Status::Error,
                    &json!({"reason": "rate limited"}),
                );
                Ok(false)
            }
            Verdict::Close => {
                tracing::info!(topic = %frame.topic, "rate limits exceeded again and again");
                Err(Disconnect::RateLimited)
            }
        }
    }
}

impl Handler for JoinedChannels {
    async fn handle_frame(&mut self, frame: Frame) -> Result<(), Disconnect> {
        if !self.admit(&frame)? {
            return Ok(());
        }
        match frame.event.as_str() {
            events::JOIN => self.join(frame).await,
            events::LEAVE => self.leave(frame).await,
            _ => self.dispatch(frame).await,
        }
        Ok(())
    }

    async fn handle_info(&mut self, info: Box<dyn Any + Send>) {
        let Ok(info) = info.downcast::<ChannelInfo>() else {
            tracing::warn!("dropping an info message of an unknown type");
            return;
        };
        let Some(joined) = self.find_mut(&info.topic) else {
            return;
        };
        if joined.socket.join_ref() != &*info.join_ref {
            return;
        }
        let channel = joined.channel.clone();
        let handling = channel.handle_info(info.message, &mut joined.socket);
        match AssertUnwindSafe(handling).catch_unwind().await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => self.crash(&info.topic, err.to_string()).await,
            Err(panic) => self.crash(&info.topic, panic_message(&*panic)).await,
        }
    }

    async fn terminate(&mut self, reason: &Disconnect) {
        let topics: Vec<Arc<str>> = self.joined.iter().map(|(t, _)| t.clone()).collect();
        for topic in topics {
            self.end(&topic, TerminateReason::Disconnect(reason.clone()))
                .await;
        }
    }
}
