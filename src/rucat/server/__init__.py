"""The REST server and the Spark Connect proxy: take user intent, write it to the store."""
