-- A ledgerd of a release before 00017 registers merchants without a
-- number, and during a rolling deploy it keeps serving once a newer one has
-- applied 00017: its inserts broke the NOT NULL rule, so no merchant could
-- be registered through it. Such an insert is numbered here as the newer
-- ledgerd numbers its own: from the market's count, holding the market's
-- row until the insert commits. An insert that gives a number is left as
-- it is.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION merchants_number_registration() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE markets SET merchants_registered = merchants_registered + 1
     WHERE code = NEW.market
    RETURNING merchants_registered INTO NEW.registration;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER merchants_number_registration BEFORE INSERT ON merchants
    FOR EACH ROW WHEN (NEW.registration IS NULL) EXECUTE FUNCTION merchants_number_registration();

-- +goose Down
DROP TRIGGER merchants_number_registration ON merchants;
DROP FUNCTION merchants_number_registration();
