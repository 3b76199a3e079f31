from protune_mm.cli.export_prompts import main

if __name__ == '__main__':
    main()
