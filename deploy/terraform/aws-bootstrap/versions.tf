terraform {
  # Preconditions, postconditions and `nullable` need 1.2+; trimprefix needs 1.3.
  required_version = ">= 1.3"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # thumbprint_list is optional (IAM picks) in recent versions; 5.81 is
      # believed to be the first, not verified offline.
      version = ">= 5.81"
    }
  }
}
