//! The handle a channel works with: its topic, its assigns, and ways to talk to the client
//! and to the topic.

use std::{
    any::Any,
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use actix_http::Extensions;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::Reply;
use crate::{
    pubsub::{PubSub, Subscriber, SubscriberId},
    transport::{
        Outbox, PushError,
        frame::{Status, encode, encode_broadcast, encode_reply},
    },
};

/// Key/value data attached to a connection (by the connect hook) and to each joined channel.
///
/// ```
/// let mut assigns = tether::channel::Assigns::default();
/// assigns.insert("user_id", "alice");
/// assert_eq!(assigns.get_str("user_id"), Some("alice"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assigns(Vec<(String, Value)>);

// A short list rather than a map: a connection has a handful of assigns, and every join
// copies them, so the smallest allocation wins (a B-tree node is ~600 bytes).
impl Assigns {
    /// Sets `key` to `value` (anything serializable).
    pub fn insert(&mut self, key: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value under `key`, if it is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.swap_remove(at).1)
    }
}

/// What every channel socket of one connection shares.
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) outbox: Outbox,
    /// The outbox as a pub/sub subscriber (one allocation per connection).
    pub(crate) subscriber: Arc<dyn Subscriber>,
    pub(crate) pubsub: Arc<dyn PubSub>,
    pub(crate) id: SubscriberId,
    /// Bytes the connection's joins hold in queues of their own (client events waiting for
    /// a handler), all joins together: each channel bounds what one connection holds.
    pub(crate) queued: Arc<AtomicUsize>,
}

impl Conn {
    pub(crate) fn new(outbox: Outbox, pubsub: Arc<dyn PubSub>) -> Conn {
        Conn {
            subscriber: Arc::new(outbox.clone()),
            outbox,
            pubsub,
            id: SubscriberId::next(),
            queued: Arc::default(),
        }
    }
}

/// A pub/sub subscription of a connection's outbox, held by one join under that join's id
/// (so two joins of one connection never replace each other's subscription); unsubscribes
/// when dropped.
pub(crate) struct Subscription {
    pubsub: Arc<dyn PubSub>,
    topic: Arc<str>,
    id: SubscriberId,
}

impl Subscription {
    pub(crate) fn new(conn: &Conn, topic: Arc<str>, id: SubscriberId) -> Subscription {
        conn.pubsub.subscribe(&topic, id, conn.subscriber.clone());
        Subscription {
            pubsub: conn.pubsub.clone(),
            topic,
            id,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.pubsub.unsubscribe(&self.topic, self.id);
    }
}

/// The topics one join listens to besides its own, shared by its [`Socket`] and every
/// [`SocketHandle`]; `None` once the join has ended (its subscriptions dropped, and no new
/// one can be made).
#[derive(Clone)]
struct Extra(Arc<Mutex<Option<Subscriptions>>>);

/// Subscriptions by topic.
type Subscriptions = HashMap<Arc<str>, Subscription>;

impl Extra {
    fn new() -> Extra {
        Extra(Arc::new(Mutex::new(Some(HashMap::new()))))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Subscriptions) -> R) -> Option<R> {
        let mut extra = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        extra.as_mut().map(f)
    }

    /// Ends every subscription; later subscribes fail.
    fn close(&self) {
        let ended = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(ended); // unsubscribes, outside the lock
    }

    fn subscribe(&self, conn: &Conn, own: &str, topic: &str, id: SubscriberId) -> Option<bool> {
        self.with(|extra| {
            if topic == own || extra.contains_key(topic) {
                return false;
            }
            let topic: Arc<str> = topic.into();
            let subscription = Subscription::new(conn, topic.clone(), id);
            extra.insert(topic, subscription);
            true
        })
    }

    fn unsubscribe(&self, topic: &str) -> Option<bool> {
        let removed = self.with(|extra| extra.remove(topic))?;
        Some(removed.is_some())
    }
}

/// Identifies a client push so it can be answered later, from any task
/// ([`SocketHandle::reply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRef {
    topic: Arc<str>,
    join_ref: Arc<str>,
    msg_ref: String,
}

/// A message for a channel's `handle_info`, addressed to one join.
pub(crate) struct ChannelInfo {
    pub(crate) topic: Arc<str>,
    pub(crate) join_ref: Arc<str>,
    pub(crate) message: Box<dyn Any + Send>,
}

/// One joined channel of one connection, as its [`Channel`](super::Channel) sees it.
pub struct Socket {
    topic: Arc<str>,
    join_ref: Arc<str>,
    /// Unique per join, across connections: owner of this join's subscriptions and
    /// presences.
    join_id: SubscriberId,
    assigns: Assigns,
    conn: Conn,
    /// Pushes made during `join`, written after the join reply.
    deferred: Option<Vec<Bytes>>,
    /// Values kept alive as long as this join (see [`Socket::attach`]).
    attached: Vec<Box<dyn Any + Send>>,
    /// Typed state of this join (see [`Socket::insert`]).
    extensions: Extensions,
    /// Topics this join listens to besides its own (see [`Socket::subscribe`]).
    extra: Extra,
    /// The ref of the client push being handled, if any.
    pub(crate) current_ref: Option<String>,
    /// Set when the client left the channel (`phx_leave`), before the join ends: what was
    /// attached can tell a leave from a lost connection (presence's leave grace).
    left: Arc<AtomicBool>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("topic", &self.topic)
            .field("join_ref", &self.join_ref)
            .field("join_id", &self.join_id)
            .field("assigns", &self.assigns)
            .finish_non_exhaustive()
    }
}

impl Socket {
    pub(crate) fn new(topic: Arc<str>, join_ref: Arc<str>, assigns: Assigns, conn: Conn) -> Socket {
        Socket {
            topic,
            join_ref,
            join_id: SubscriberId::next(),
            assigns,
            conn,
            deferred: Some(Vec::new()),
            attached: Vec::new(),
            extensions: Extensions::new(),
            extra: Extra::new(),
            current_ref: None,
            left: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The joined topic, e.g. `room:lobby`.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The join reference the client chose for this join.
    pub fn join_ref(&self) -> &str {
        &self.join_ref
    }

    /// This join's assigns.
    pub fn assigns(&self) -> &Assigns {
        &self.assigns
    }

    /// This join's assigns, mutably.
    pub fn assigns_mut(&mut self) -> &mut Assigns {
        &mut self.assigns
    }

    /// Identifies the connection (all its joins share it).
    pub fn connection_id(&self) -> SubscriberId {
        self.conn.id
    }

    /// Identifies this join, unique in the process: its pub/sub subscriptions and its
    /// presences are held under it, so ending one join never touches another join of the
    /// same connection.
    pub fn join_id(&self) -> SubscriberId {
        self.join_id
    }

    /// The pub/sub this socket publishes on.
    pub fn pubsub(&self) -> &Arc<dyn PubSub> {
        &self.conn.pubsub
    }

    /// Pushes `event` with `payload` to this client on this channel.
    ///
    /// During [`Channel::join`](super::Channel::join) the push is held back and sent right
    /// after the join reply (and dropped if the join is refused).
    pub fn push(
        &mut self,
        event: &str,
        payload: &(impl Serialize + ?Sized),
    ) -> Result<(), PushError> {
        let frame = encode(Some(&self.join_ref), None, &self.topic, event, payload);
        match &mut self.deferred {
            Some(deferred) => {
                deferred.push(frame);
                Ok(())
            }
            None => self.conn.outbox.push_frame(frame),
        }
    }

    /// Sends `event` to every client joined to this topic, this one included.
    /// The frame is encoded once and shared by all subscribers.
    pub fn broadcast(&self, event: &str, payload: &(impl Serialize + ?Sized)) {
        let frame = encode_broadcast(&self.topic, event, payload);
        self.conn.pubsub.broadcast(&self.topic, frame, None);
    }

    /// Sends `event` to every client joined to this topic except this one.
    pub fn broadcast_from(&self, event: &str, payload: &(impl Serialize + ?Sized)) {
        let frame = encode_broadcast(&self.topic, event, payload);
        self.conn
            .pubsub
            .broadcast(&self.topic, frame, Some(self.join_id));
    }

    /// The reference of the push being handled, to reply to it later with
    /// [`SocketHandle::reply`] (return [`Reply::None`] from `handle_in` in that case).
    pub fn reply_ref(&self) -> Option<ReplyRef> {
        self.current_ref.as_ref().map(|msg_ref| ReplyRef {
            topic: self.topic.clone(),
            join_ref: self.join_ref.clone(),
            msg_ref: msg_ref.clone(),
        })
    }

    /// A flag that reads `true` once the client left this channel (`phx_leave`); it stays
    /// `false` when the join ends any other way (connection lost, crash, shutdown).
    pub(crate) fn left_flag(&self) -> Arc<AtomicBool> {
        self.left.clone()
    }

    /// Records that the client left (before the join ends).
    pub(crate) fn mark_left(&self) {
        self.left.store(true, Ordering::Release);
    }

    /// Keeps `guard` alive until this join ends (leave, rejoin, crash or disconnect), then
    /// drops it — after [`Channel::terminate`](super::Channel::terminate) has run. Higher
    /// layers use it to undo what they did for this join (presence untracks this way).
    pub fn attach(&mut self, guard: impl Any + Send) {
        self.attached.push(Box::new(guard));
    }

    /// Stores typed state for this join (one value per type), e.g. a layer's own context.
    ///
    /// ```
    /// # fn f(socket: &mut tether::channel::Socket) {
    /// struct Visits(u32);
    /// socket.insert(Visits(1));
    /// if let Some(v) = socket.get_mut::<Visits>() { v.0 += 1; }
    /// assert_eq!(socket.get::<Visits>().map(|v| v.0), Some(2));
    /// # }
    /// ```
    pub fn insert<T: Any>(&mut self, value: T) {
        self.extensions.insert(value);
    }

    /// The state of type `T` stored with [`Socket::insert`].
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.extensions.get()
    }

    /// The state of type `T`, mutably.
    pub fn get_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.extensions.get_mut()
    }

    /// Takes the state of type `T` out of this join.
    pub fn remove<T: Any>(&mut self) -> Option<T> {
        self.extensions.remove()
    }

    /// Also delivers broadcasts on `topic` to this client (as frames on `topic`), until
    /// [`Socket::unsubscribe`] or the end of this join. Returns `false` if already
    /// subscribed (or if `topic` is this join's own topic).
    pub fn subscribe(&mut self, topic: &str) -> bool {
        self.extra
            .subscribe(&self.conn, &self.topic, topic, self.join_id)
            .unwrap_or(false)
    }

    /// Stops delivering `topic`; returns `false` if it was not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        self.extra.unsubscribe(topic).unwrap_or(false)
    }

    /// Topics subscribed with [`Socket::subscribe`] (or [`SocketHandle::subscribe`]).
    pub fn subscriptions(&self) -> Vec<String> {
        self.extra
            .with(|extra| extra.keys().map(|t| t.to_string()).collect())
            .unwrap_or_default()
    }

    /// A `Send` handle to reach this channel from other tasks.
    pub fn handle(&self) -> SocketHandle {
        SocketHandle {
            topic: self.topic.clone(),
            join_ref: self.join_ref.clone(),
            join_id: self.join_id,
            conn: self.conn.clone(),
            extra: self.extra.clone(),
        }
    }

    /// Ends the deferral of pushes; returns what was held back.
    pub(crate) fn take_deferred(&mut self) -> Vec<Bytes> {
        self.deferred.take().unwrap_or_default()
    }

    /// The bytes this connection's joins hold in queues of their own (see `Conn::queued`).
    pub(crate) fn connection_queued(&self) -> &Arc<AtomicUsize> {
        &self.conn.queued
    }

    /// The connection's outbound queue.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.conn.outbox
    }

    /// Encodes and queues a reply to `msg_ref` on this channel.
    pub(crate) fn send_reply(&self, msg_ref: Option<&str>, reply: &Reply) {
        if let Some(frame) = reply_frame(&self.topic, Some(&self.join_ref), msg_ref, reply) {
            let _ = self.conn.outbox.push_frame(frame);
        }
    }
}

impl Drop for Socket {
    /// The join has ended: its subscriptions end with it, also those made through a
    /// [`SocketHandle`] that is still around.
    fn drop(&mut self) {
        self.extra.close();
    }
}

fn reply_frame(
    topic: &str,
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    reply: &Reply,
) -> Option<Bytes> {
    let (status, response) = match reply {
        Reply::None => return None,
        Reply::Ok(response) => (Status::Ok, response),
        Reply::Error(response) => (Status::Error, response),
    };
    Some(encode_reply(join_ref, msg_ref, topic, status, response))
}

/// Reaches one joined channel from any task: push, reply later, or send it a message.
///
/// Everything goes through the connection's outbound queue, so it is ordered with the
/// channel's own pushes. Once the channel has left or the connection closed, frames for it
/// are dropped by the client (they carry the old join ref) or refused with
/// [`PushError::Closed`].
#[derive(Clone)]
pub struct SocketHandle {
    topic: Arc<str>,
    join_ref: Arc<str>,
    join_id: SubscriberId,
    conn: Conn,
    extra: Extra,
}

impl std::fmt::Debug for SocketHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketHandle")
            .field("topic", &self.topic)
            .field("join_ref", &self.join_ref)
            .finish_non_exhaustive()
    }
}

impl SocketHandle {
    /// Pushes `event` to the client on this channel.
    pub fn push(&self, event: &str, payload: &(impl Serialize + ?Sized)) -> Result<(), PushError> {
        self.conn.outbox.push_frame(encode(
            Some(&self.join_ref),
            None,
            &self.topic,
            event,
            payload,
        ))
    }

    /// Answers a push that was left unanswered by `handle_in`.
    pub fn reply(&self, to: &ReplyRef, reply: Reply) -> Result<(), PushError> {
        match reply_frame(&to.topic, Some(&to.join_ref), Some(&to.msg_ref), &reply) {
            Some(frame) => self.conn.outbox.push_frame(frame),
            None => Ok(()),
        }
    }

    /// Delivers `message` to the channel's `handle_info`, in the connection's task.
    pub fn send_info(&self, message: impl Any + Send) -> Result<(), PushError> {
        self.conn.outbox.push_info(Box::new(ChannelInfo {
            topic: self.topic.clone(),
            join_ref: self.join_ref.clone(),
            message: Box::new(message),
        }))
    }

    /// The join this handle reaches (see [`Socket::join_id`]).
    pub fn join_id(&self) -> SubscriberId {
        self.join_id
    }

    /// [`Socket::subscribe`] from any task. `Err(Closed)` once the join has ended: a
    /// subscription never outlives its join.
    pub fn subscribe(&self, topic: &str) -> Result<bool, PushError> {
        self.extra
            .subscribe(&self.conn, &self.topic, topic, self.join_id)
            .ok_or(PushError::Closed)
    }

    /// [`Socket::unsubscribe`] from any task; `Err(Closed)` once the join has ended.
    pub fn unsubscribe(&self, topic: &str) -> Result<bool, PushError> {
        self.extra.unsubscribe(topic).ok_or(PushError::Closed)
    }
}
