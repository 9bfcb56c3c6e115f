from kommo_hub.logging import mask_pii


def test_phone_numbers_and_emails_are_masked_but_ids_stay_readable() -> None:
    line = (
        "task 49106367-bcab-4d3e-9b1a-7c2f5e8d1a40 for +5511987654321, "
        "(11) 98765-4321 and maria.souza@example.com on lead 18754321"
    )

    assert mask_pii(line) == (
        "task 49106367-bcab-4d3e-9b1a-7c2f5e8d1a40 for +5511****21, "
        "1198****21 and m***@example.com on lead 18754321"
    )


def test_the_secret_in_a_webhook_path_is_masked() -> None:
    assert mask_pii("Forbidden: /webhooks/kommo/s3cr3t-value/") == "Forbidden: /webhooks/kommo/***/"
