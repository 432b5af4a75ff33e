//! An example Discord bot running as an AWS Lambda function behind shardline.
//!
//! - `!ping` answers with how long the event took from the gateway to here.
//! - `!members <name>` asks the gateway for members whose name starts with
//!   `<name>`; the answer arrives as a `GUILD_MEMBERS_CHUNK` event, which
//!   `members_found` posts back to the channel.
//! - New members are welcomed in `WELCOME_CHANNEL_ID`, or the guild's system channel.
//! - The `/hello` slash command is answered through the interaction callback.
//!
//! Run it locally with `cargo lambda watch --bin example-bot`, build it for AWS
//! with `cargo lambda build --release --bin example-bot`.

use shardline_lambda_bot::event::{InteractionCreate, MemberAdd, MemberChunk, MessageCreate};
use shardline_lambda_bot::model::application::interaction::InteractionData;
use shardline_lambda_bot::model::gateway::payload::outgoing::RequestGuildMembers;
use shardline_lambda_bot::model::http::interaction::{
    InteractionResponse, InteractionResponseData, InteractionResponseType,
};
use shardline_lambda_bot::model::id::Id;
use shardline_lambda_bot::model::id::marker::ChannelMarker;
use shardline_lambda_bot::{Bot, Context, Error, ResultExt};

#[tokio::main]
async fn main() -> Result<(), shardline_lambda_bot::RunError> {
    shardline_lambda_bot::tracing::init_default_subscriber();
    let bot = Bot::new()
        .on(on_message)
        .on(members_found)
        .on(welcome)
        .on(slash_command);
    shardline_lambda_bot::run(bot).await
}

/// `!ping` and `!members <name>`.
async fn on_message(ctx: Context, msg: MessageCreate) -> Result<(), Error> {
    if msg.author.bot {
        return Ok(());
    }
    if msg.content == "!ping" {
        let reply = match ctx.record().age() {
            Some(age) => format!(
                "pong: {} ms from the gateway to this handler",
                age.as_millis()
            ),
            None => "pong".to_owned(),
        };
        ctx.http()
            .create_message(msg.channel_id)
            .content(&reply)
            .await?;
    } else if let Some(name) = msg.content.strip_prefix("!members") {
        let Some(guild_id) = msg.guild_id else {
            return Ok(());
        };
        // The nonce comes back with the answer: use it to remember the channel.
        let request = RequestGuildMembers::builder(guild_id)
            .nonce(msg.channel_id.to_string())
            .query(name.trim(), Some(10));
        ctx.gateway().request_guild_members(&request).await?;
    }
    Ok(())
}

/// The answer to `!members`: post the names to the channel named by the nonce.
async fn members_found(ctx: Context, chunk: MemberChunk) -> Result<(), Error> {
    let Some(channel_id) = chunk.nonce.as_deref().and_then(|n| n.parse().ok()) else {
        return Ok(()); // a chunk someone else asked for
    };
    let names: Vec<&str> = chunk.members.iter().map(|m| m.user.name.as_str()).collect();
    let reply = match names.as_slice() {
        [] => "nobody by that name".to_owned(),
        names => format!("found: {}", names.join(", ")),
    };
    ctx.http()
        .create_message(Id::<ChannelMarker>::new(channel_id))
        .content(&reply)
        .await?;
    Ok(())
}

/// Welcomes a new member in `WELCOME_CHANNEL_ID`, else the guild's system channel.
async fn welcome(ctx: Context, member: MemberAdd) -> Result<(), Error> {
    let channel_id = match welcome_channel()? {
        Some(channel_id) => channel_id,
        None => {
            let guild = ctx.http().guild(member.guild_id).await?.model().await?;
            let Some(channel_id) = guild.system_channel_id else {
                return Ok(()); // nowhere to say hello
            };
            channel_id
        }
    };
    let text = format!("Welcome, <@{}>!", member.user.id);
    ctx.http().create_message(channel_id).content(&text).await?;
    Ok(())
}

fn welcome_channel() -> Result<Option<Id<ChannelMarker>>, Error> {
    match std::env::var("WELCOME_CHANNEL_ID") {
        Ok(id) if !id.trim().is_empty() => {
            let id: u64 = id.trim().parse().permanent()?;
            Ok(Id::new_checked(id))
        }
        _ => Ok(None),
    }
}

/// `/hello`: answered through the interaction callback, which Discord
/// accepts only within 3 s of the interaction.
async fn slash_command(ctx: Context, interaction: InteractionCreate) -> Result<(), Error> {
    let Some(InteractionData::ApplicationCommand(command)) = &interaction.data else {
        return Ok(());
    };
    if command.name != "hello" {
        return Ok(());
    }
    let user = interaction
        .author_id()
        .map_or("there".to_owned(), |id| format!("<@{id}>"));
    let response = InteractionResponse {
        kind: InteractionResponseType::ChannelMessageWithSource,
        data: Some(InteractionResponseData {
            content: Some(format!("Hello, {user}!")),
            ..Default::default()
        }),
    };
    ctx.http()
        .interaction(interaction.application_id)
        .create_response(interaction.id, &interaction.token, &response)
        .await?;
    Ok(())
}
