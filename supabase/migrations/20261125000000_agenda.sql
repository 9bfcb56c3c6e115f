-- Kommo Hub: the agenda tables in Supabase (salespeople's availability, appointments, history).
--
-- Apply it with the Supabase CLI from the project's folder (`supabase init` once if there is no
-- supabase/config.toml, `supabase link --project-ref <ref>`, then `supabase db push`), or paste
-- it into the SQL editor. It can run again safely: every statement is "if not exists" or
-- "create or replace", and policies/triggers are dropped and recreated.
--
-- Keys shared with the hub:
--   vendedor_id             the hub's salesperson id (Admin > Routing > Salespeople: the number
--                           in the page address), i.e. routing.Salesperson.pk
--   vendedor_kommo_user_id  optional: the salesperson's Kommo user id, used by the hub when
--                           vendedor_id is not one of its salespeople
--   lead_id                 the hub's lead id; kommo_lead_id the Kommo lead id (either is enough)
--
-- The hub reads every table incrementally by (updated_at, id): updated_at is set by a trigger on
-- every insert and update. Delete rows softly (set deleted_at) so that the periodic sync sees
-- the deletion; a hard DELETE reaches the hub through the database webhook below, or through
-- `python manage.py sync_supabase --full`.
--
-- Database webhooks (Dashboard > Database > Webhooks > Create a new hook), one per table, events
-- Insert, Update and Delete, type HTTP Request, method POST, URL
--   https://<your hub>/webhooks/supabase/<SUPABASE_WEBHOOK_SECRET>/
-- make the hub apply each change at once instead of at its next sync (every minute).

-- btree_gist lets the exclusion constraint compare vendedor_id (a bigint) with "=" in a GiST
-- index. Supabase keeps extensions in the "extensions" schema; on a plain Postgres it is created.
create schema if not exists extensions;
create extension if not exists btree_gist with schema extensions;

-- updated_at = the time of the writing transaction, on every insert and update (like the
-- moddatetime extension, but also on insert, so that a client cannot backdate a row).
create or replace function public.kommo_hub_set_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;

-- --- agenda_vendedor: extra availability and blocks per salesperson ---------------------------

create table if not exists public.agenda_vendedor (
  id uuid primary key default gen_random_uuid(),
  vendedor_id bigint not null,
  vendedor_kommo_user_id bigint,
  tipo text not null check (tipo in ('disponivel', 'bloqueio')),
  inicio timestamptz not null,
  fim timestamptz not null,
  motivo text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint agenda_vendedor_fim_depois_do_inicio check (fim > inicio)
);

comment on table public.agenda_vendedor is
  'Kommo Hub: availability (disponivel) and blocks (bloqueio) in a salesperson''s agenda';
comment on column public.agenda_vendedor.vendedor_id is 'The hub''s salesperson id';

create index if not exists agenda_vendedor_updated_at_id_idx
  on public.agenda_vendedor (updated_at, id);
create index if not exists agenda_vendedor_vendedor_inicio_idx
  on public.agenda_vendedor (vendedor_id, inicio);

-- --- agendamentos: appointments ----------------------------------------------------------------

create table if not exists public.agendamentos (
  id uuid primary key default gen_random_uuid(),
  vendedor_id bigint not null,
  vendedor_kommo_user_id bigint,
  lead_id bigint,
  kommo_lead_id bigint,
  kommo_contact_id bigint,
  inicio timestamptz not null,
  fim timestamptz not null,
  status text not null default 'booked'
    check (status in ('booked', 'confirmed', 'cancelled', 'done', 'no_show')),
  origem text,
  titulo text,
  observacoes text,
  idempotency_key text unique,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint agendamentos_fim_depois_do_inicio check (fim > inicio),
  -- The database itself forbids two active appointments of one salesperson that overlap.
  -- Half-open ranges: [10:00, 10:30) and [10:30, 11:00) do not overlap.
  constraint agendamentos_sem_sobreposicao exclude using gist (
    vendedor_id with =,
    tstzrange(inicio, fim, '[)') with &&
  ) where (status in ('booked', 'confirmed') and deleted_at is null)
);

comment on table public.agendamentos is 'Kommo Hub: appointments between salespeople and leads';
comment on column public.agendamentos.vendedor_id is 'The hub''s salesperson id';
comment on column public.agendamentos.lead_id is 'The hub''s lead id';
comment on column public.agendamentos.idempotency_key is
  'Set by the hub when it books: the same booking retried carries the same key';

create index if not exists agendamentos_updated_at_id_idx
  on public.agendamentos (updated_at, id);
create index if not exists agendamentos_vendedor_inicio_idx
  on public.agendamentos (vendedor_id, inicio);
create index if not exists agendamentos_kommo_lead_idx
  on public.agendamentos (kommo_lead_id);

-- --- historico_interacoes: interaction history ---------------------------------------------------

create table if not exists public.historico_interacoes (
  id uuid primary key default gen_random_uuid(),
  lead_id bigint,
  kommo_lead_id bigint,
  agendamento_id uuid references public.agendamentos (id) on delete set null,
  tipo text not null default '',
  texto text,
  dados jsonb not null default '{}'::jsonb,
  ocorrido_em timestamptz not null default now(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz
);

comment on table public.historico_interacoes is 'Kommo Hub: interaction history of leads';

create index if not exists historico_interacoes_updated_at_id_idx
  on public.historico_interacoes (updated_at, id);
create index if not exists historico_interacoes_lead_idx
  on public.historico_interacoes (lead_id, ocorrido_em);
create index if not exists historico_interacoes_agendamento_idx
  on public.historico_interacoes (agendamento_id);

-- --- updated_at triggers -------------------------------------------------------------------------

drop trigger if exists agenda_vendedor_set_updated_at on public.agenda_vendedor;
create trigger agenda_vendedor_set_updated_at
  before insert or update on public.agenda_vendedor
  for each row execute function public.kommo_hub_set_updated_at();

drop trigger if exists agendamentos_set_updated_at on public.agendamentos;
create trigger agendamentos_set_updated_at
  before insert or update on public.agendamentos
  for each row execute function public.kommo_hub_set_updated_at();

drop trigger if exists historico_interacoes_set_updated_at on public.historico_interacoes;
create trigger historico_interacoes_set_updated_at
  before insert or update on public.historico_interacoes
  for each row execute function public.kommo_hub_set_updated_at();

-- --- Row-level security: only the service_role (the hub's key) reads and writes ------------------
-- anon and authenticated (the browser keys) get nothing; add policies of your own if an app of
-- yours needs them. The roles exist in every Supabase project.

alter table public.agenda_vendedor enable row level security;
alter table public.agendamentos enable row level security;
alter table public.historico_interacoes enable row level security;

revoke all on table public.agenda_vendedor, public.agendamentos, public.historico_interacoes
  from anon, authenticated;
grant usage on schema public to service_role;
grant select, insert, update, delete
  on table public.agenda_vendedor, public.agendamentos, public.historico_interacoes
  to service_role;

drop policy if exists kommo_hub_service_role_all on public.agenda_vendedor;
create policy kommo_hub_service_role_all on public.agenda_vendedor
  for all to service_role using (true) with check (true);

drop policy if exists kommo_hub_service_role_all on public.agendamentos;
create policy kommo_hub_service_role_all on public.agendamentos
  for all to service_role using (true) with check (true);

drop policy if exists kommo_hub_service_role_all on public.historico_interacoes;
create policy kommo_hub_service_role_all on public.historico_interacoes
  for all to service_role using (true) with check (true);
