"""The Telegram transport: updates in, the conversation service called, replies rendered."""
