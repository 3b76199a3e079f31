from protune_mm.cli.quickstart import main

if __name__ == '__main__':
    main()
