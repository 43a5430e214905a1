# Connects account 111122223333 to the issuer https://id.example.com for the
# agents "deployer" and "ci" of org "acme"; each role may only read S3 objects.
issuer_url        = "https://id.example.com"
org               = "acme"
agents            = ["deployer", "ci"]
allowed_actions   = ["s3:GetObject"]
target_account_id = "111122223333"

# Defaults, spelled out:
# client_ids        = ["sts.amazonaws.com"]
# audience          = "sts.amazonaws.com"
# thumbprints       = []
# allowed_resources = ["*"]
# any_agent         = false
# tags_enabled      = false
# source_identity   = false
# partition         = "aws"
# role_name_prefix  = "nomos"
