-- The version-1 schema as the first release created it on PostgreSQL.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
       kind TEXT NOT NULL, secret_id BIGINT NOT NULL, key BYTEA NOT NULL, created_at BIGINT NOT NULL,
       PRIMARY KEY (kind, secret_id));
CREATE TABLE IF NOT EXISTS vendors (
       vendor_id TEXT PRIMARY KEY, dns_name TEXT NOT NULL, ip_addr TEXT NOT NULL,
       server_name TEXT NOT NULL, port BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS vendor_keys (
       vendor_id TEXT NOT NULL REFERENCES vendors(vendor_id), key_id BIGINT NOT NULL, secret BYTEA NOT NULL,
       PRIMARY KEY (vendor_id, key_id));
CREATE TABLE IF NOT EXISTS accounts (
       account_id TEXT PRIMARY KEY, kind TEXT NOT NULL, currency TEXT NOT NULL, balance BIGINT NOT NULL,
       CHECK (kind = 'external' OR balance >= 0));
CREATE TABLE IF NOT EXISTS transfers (
       transfer_id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL,
       debit_account TEXT NOT NULL REFERENCES accounts(account_id),
       credit_account TEXT NOT NULL REFERENCES accounts(account_id),
       amount BIGINT NOT NULL, currency TEXT NOT NULL, created_at BIGINT NOT NULL,
       CHECK (amount > 0), CHECK (debit_account <> credit_account));
CREATE TABLE IF NOT EXISTS campaigns (
       campaign_id TEXT PRIMARY KEY, vendor_id TEXT NOT NULL REFERENCES vendors(vendor_id),
       currency TEXT NOT NULL, cap BIGINT NOT NULL, funded BIGINT NOT NULL, issued BIGINT NOT NULL,
       CHECK (funded <= cap));
CREATE TABLE IF NOT EXISTS customers (
       customer_serial BIGINT PRIMARY KEY, wallet_id TEXT NOT NULL UNIQUE, secret_id BIGINT NOT NULL,
       name TEXT NOT NULL, address TEXT NOT NULL, email TEXT NOT NULL, etc TEXT NOT NULL,
       sealed_hash BYTEA NOT NULL, reply BYTEA NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS scrips (
       serial BIGINT PRIMARY KEY, customer_serial BIGINT NOT NULL, currency TEXT NOT NULL,
       value BIGINT NOT NULL, expires_at BIGINT NOT NULL, state TEXT NOT NULL,
       created_at BIGINT NOT NULL, spent_at BIGINT,
       CHECK (value >= 0), CHECK (state IN ('live', 'spent')));
CREATE UNIQUE INDEX IF NOT EXISTS scrips_one_live ON scrips (customer_serial, currency) WHERE state = 'live';
CREATE TABLE IF NOT EXISTS transactions (
       vendor_id TEXT NOT NULL, tran_id TEXT NOT NULL, kind TEXT NOT NULL, customer_serial BIGINT NOT NULL,
       amount BIGINT NOT NULL, currency TEXT NOT NULL, campaign_id TEXT NOT NULL, item TEXT NOT NULL,
       delivery_method BIGINT NOT NULL, expires_at BIGINT NOT NULL, offer_hash BYTEA NOT NULL,
       vendor_key_id BIGINT NOT NULL, state TEXT NOT NULL, in_serial BIGINT NOT NULL, out_serial BIGINT NOT NULL, restored_serial BIGINT NOT NULL,
       execute_reply BYTEA, confirm_reply BYTEA, cancel_reply BYTEA,
       created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
       PRIMARY KEY (vendor_id, tran_id), CHECK (amount > 0));
CREATE UNIQUE INDEX IF NOT EXISTS transactions_by_customer ON transactions (customer_serial, tran_id);
CREATE TABLE IF NOT EXISTS rewards (
       campaign_id TEXT NOT NULL, item TEXT NOT NULL, customer_serial BIGINT NOT NULL, tran_id TEXT NOT NULL,
       PRIMARY KEY (campaign_id, item, customer_serial));
CREATE TABLE IF NOT EXISTS requests (
       request_id TEXT PRIMARY KEY, kind TEXT NOT NULL, customer_serial BIGINT NOT NULL, reply BYTEA NOT NULL,
       created_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS payouts (
       payout_id TEXT PRIMARY KEY, customer_serial BIGINT NOT NULL, amount BIGINT NOT NULL,
       currency TEXT NOT NULL, account TEXT NOT NULL, created_at BIGINT NOT NULL, CHECK (amount > 0));
CREATE TABLE IF NOT EXISTS settlements (
       sequence BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, vendor_id TEXT NOT NULL, tran_id TEXT NOT NULL,
       amount BIGINT NOT NULL, currency TEXT NOT NULL, item TEXT NOT NULL, settled_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS settlements_by_vendor ON settlements (vendor_id, sequence);
